"""Every released graph's forward pass compiles with XLA at 224 px (batch 1).

Models that differ from another released model only in their readout (the _tmaxconf, _dthresh
and t22 variants) are covered by that model plus the readout test below, which compiles every
readout kind.

Agreement of XLA with the eager result is checked per cell (tests/model/cells/test_contract.py) and
on a small feedback graph below; at the released models' initial weights such a comparison
would be ill-conditioned (e.g. lstm_shallow's constant gate biases make its H,W,C layer norms
divide round-off by sqrt(1e-12) at t=0, in the original as here).
"""
import numpy as np
import pytest
import tensorflow as tf

import tpu_convrnn
from small_graphs import S, randomize, small_graph
from tpu_convrnn.model.readouts import KINDS

READOUT_VARIANTS = ("rgc_intermediate_tmaxconf", "rgc_intermediate_dthresh",
                    "rgc_intermediate_t22_tmaxconf", "ugrnn_intermediate_t30_tmaxconf",
                    "ugrnn_intermediate_t30_dthresh")


@pytest.mark.parametrize("name", [m for m in tpu_convrnn.RELEASED_MODELS
                                  if m not in READOUT_VARIANTS])
def test_forward_compiles_with_jit(name):
    model = tpu_convrnn.load_model(name)
    images = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype("float32")
    out = tf.function(lambda x: model(x), jit_compile=True)(images).numpy()
    assert out.shape == (1, 1000) and np.all(np.isfinite(out))


def test_xla_agrees_with_eager_on_a_feedback_graph():
    model = small_graph(times=6, readout={"kind": "max_conf"})
    randomize(model, seed=3)
    images = np.random.default_rng(1).uniform(0, 1, (2, S, S, 3)).astype("float32")
    compiled = tf.function(lambda x: model.unroll(x)["window_logits"], jit_compile=True)
    eager = model.unroll(images)["window_logits"].numpy()
    np.testing.assert_allclose(compiled(images).numpy(), eager, rtol=1e-4,
                               atol=1e-5 * np.max(np.abs(eager)))


@pytest.mark.parametrize("kind", KINDS)
def test_every_readout_compiles_and_agrees_with_eager(kind):
    model = small_graph(times=6, readout={"kind": kind})
    randomize(model, seed=4)
    images = np.random.default_rng(2).uniform(0, 1, (3, S, S, 3)).astype("float32")
    compiled = tf.function(lambda x: model(x), jit_compile=True)(images).numpy()
    np.testing.assert_allclose(compiled, model(images).numpy(), rtol=1e-4, atol=1e-5)
