"""Every released model's forward pass compiles with XLA at 224 px (batch 1) and agrees with
the eager graph-mode result."""
import numpy as np
import pytest
import tensorflow as tf

import tpu_convrnn


@pytest.mark.parametrize("name", tpu_convrnn.RELEASED_MODELS)
def test_forward_compiles_with_jit(name):
    model = tpu_convrnn.load_model(name)
    images = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype("float32")
    compiled = tf.function(lambda x: model(x), jit_compile=True)
    out = compiled(images).numpy()
    assert out.shape == (1, 1000) and np.all(np.isfinite(out))
    eager = model(images).numpy()
    np.testing.assert_allclose(out, eager, rtol=1e-3, atol=1e-3 * np.max(np.abs(eager)))
