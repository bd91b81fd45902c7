"""The same model code runs under Keras' JAX backend (in a subprocess: the backend is fixed at
import time)."""
from jax_subprocess import needs_jax, run_under_jax

SCRIPT = r"""
import numpy as np, keras
assert keras.backend.backend() == "jax"
import tpu_convrnn
m = tpu_convrnn.build_model("rgc_intermediate", image_size=32, times=12)
x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype("float32")
y = np.asarray(m(x))
f = tpu_convrnn.extract_features(m, x, ["conv6"])
print("OK", y.shape, f["conv6"].shape, bool(np.all(np.isfinite(y))))
"""


@needs_jax
def test_model_runs_under_jax():
    assert "OK (1, 1000) (12, 1, 2, 2, 256) True" in run_under_jax(SCRIPT, timeout=900)
