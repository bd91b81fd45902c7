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

# work elimination under jax.jit: the same logits and gradients as the dense unroll
import jax
from tpu_convrnn.model import execution
s = tpu_convrnn.build_model("rgc_shallow", width=0.125, image_size=16, grow_image_size=True)
xs = np.random.default_rng(1).uniform(0, 1, (3, s.image_size, s.image_size, 3)).astype("float32")
tv = [v.value for v in s.trainable_variables]

def loss(tv):
    logits, _ = s.stateless_call(tv, [], xs, training=True)
    return keras.ops.mean(keras.ops.square(logits)), logits

got = {}
for e in (True, False):
    with execution.settings(eliminate=e):
        got[e] = jax.jit(jax.value_and_grad(loss, has_aux=True))(tv)
rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b))) /
                         max(float(np.max(np.abs(np.asarray(b)))), 1e-6))
(l1, z1), g1 = got[True]
(l0, z0), g0 = got[False]
worst = max([rel(z1, z0), rel(l1, l0)] + [rel(a, b) for a, b in zip(g1, g0)])
print("ELIMINATION", worst < 1e-5, worst)
"""


@needs_jax
def test_model_runs_under_jax():
    out = run_under_jax(SCRIPT, timeout=900)
    assert "OK (1, 1000) (12, 1, 2, 2, 256) True" in out
    assert "ELIMINATION True" in out, out
