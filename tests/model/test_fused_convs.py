"""Convolutions of one input run as one (tpu_convrnn/model/fused_convs.py): same values and
gradients as calling the layers one by one, and fewer convolutions in the traced step."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from jax_subprocess import needs_jax, run_under_jax

from tpu_convrnn.model import depthwise

from tpu_convrnn.model import execution
from tpu_convrnn.model.cells.reciprocal import MedianReciprocalGatedCell
from tpu_convrnn.model.fused_convs import apply_shared


def _build(layers, shape, seed):
    rng = np.random.default_rng(seed)
    for layer in layers:
        layer.build(shape)
        for w in layer.weights:
            w.assign(rng.normal(size=w.shape).astype("float32"))
    return layers


def _values_and_grads(fn, x, layers):
    xv = tf.constant(x)
    weights = [w for layer in layers for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        tape.watch(xv)
        outs = fn(xv)
        loss = sum(tf.reduce_sum(o * (i + 1.0)) for i, o in enumerate(outs))
    grads = tape.gradient(loss, [xv] + weights)
    return [o.numpy() for o in outs], [g.numpy() for g in grads]


def _assert_same(layers, x):
    fused = _values_and_grads(lambda t: apply_shared(t, layers), x, layers)
    plain = _values_and_grads(lambda t: [layer(t) for layer in layers], x, layers)
    for a, b in zip(fused[0] + fused[1], plain[0] + plain[1]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("hw", [(9, 9), (8, 7)])
def test_full_convs_of_mixed_sizes(hw):
    """Kernel sizes 2 (SAME pads after only), 3, 1 and 4x3, with and without bias."""
    layers = _build([keras.layers.Conv2D(3, 2, padding="same", name="a"),
                     keras.layers.Conv2D(5, 3, padding="same", name="b"),
                     keras.layers.Conv2D(2, 1, padding="same", use_bias=False, name="c"),
                     keras.layers.Conv2D(4, (4, 3), padding="same", name="d")],
                    (2,) + hw + (6,), 0)
    _assert_same(layers, np.random.default_rng(1).normal(size=(2,) + hw + (6,)).astype("f4"))


def test_separable_convs_of_mixed_sizes():
    layers = _build([depthwise.SeparableConv2D(4, 7, padding="same", name="a"),
                     depthwise.SeparableConv2D(6, 5, padding="same", name="b"),
                     depthwise.SeparableConv2D(3, 2, padding="same", use_bias=False, name="c")],
                    (2, 8, 8, 5), 2)
    _assert_same(layers, np.random.default_rng(3).normal(size=(2, 8, 8, 5)).astype("f4"))


def test_other_layers_are_called_as_they_are_and_order_is_kept():
    layers = _build([keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="act"),
                     keras.layers.Conv2D(2, 3, padding="same", name="a"),
                     depthwise.SeparableConv2D(4, 3, padding="same", name="sep"),
                     keras.layers.Conv2D(4, 1, padding="same", name="b"),
                     keras.layers.Conv2D(2, 3, strides=2, padding="same", name="s2")],
                    (1, 6, 6, 3), 4)
    x = np.random.default_rng(5).normal(size=(1, 6, 6, 3)).astype("f4")
    outs = apply_shared(tf.constant(x), layers)
    assert [tuple(o.shape) for o in outs] == [(1, 6, 6, 3), (1, 6, 6, 2), (1, 6, 6, 4),
                                              (1, 6, 6, 4), (1, 3, 3, 2)]
    _assert_same(layers, x)


def test_median_cell_step_is_the_same_with_and_without_fusion():
    rng = np.random.default_rng(6)
    u, x = (rng.normal(size=(2, 7, 7, 16)).astype("f4") for _ in range(2))
    fb = rng.normal(size=(2, 7, 7, 8)).astype("f4")
    state = (rng.normal(size=(2, 7, 7, 64)).astype("f4"), rng.normal(size=(2, 7, 7, 16)).astype("f4"))
    results = {}
    for fuse in (True, False):
        keras.utils.set_random_seed(0)
        cell = MedianReciprocalGatedCell(16)
        cell.build(u.shape, inputs_shape=x.shape, feedback_shape=fb.shape)
        with tf.GradientTape() as tape, execution.settings(fuse_convs=fuse):
            h, (c, _) = cell(u, state, inputs=x, feedback=fb)
            loss = tf.reduce_sum(h * h) + tf.reduce_sum(c * c)
        results[fuse] = [h.numpy(), c.numpy()] + \
            [g.numpy() for g in tape.gradient(loss, cell.trainable_variables)]
    assert len(results[True]) == len(results[False]) > 10
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


COUNT_SCRIPT = r"""
import re, jax, numpy as np
from tpu_convrnn.model import execution
from tpu_convrnn.model.cells.reciprocal import MedianReciprocalGatedCell
counts = {}
for fuse in (True, False):
    execution.set_default(fuse_convs=fuse, depthwise="native")
    cell = MedianReciprocalGatedCell(16)
    cell.build((2, 7, 7, 16), inputs_shape=(2, 7, 7, 8))
    tv = [v.value for v in cell.trainable_variables]
    args = [np.ones((2, 7, 7, d), "float32") for d in (16, 64, 16, 8)]
    def step(tv, u, c, h, x):
        h_new, (c_new, _) = cell.stateless_call(tv, [], u, (c, h), inputs=x)[0]
        return h_new, c_new
    text = jax.jit(step).lower(tv, *args).as_text()
    counts[fuse] = len(re.findall(r"stablehlo.convolution", text))
print("COUNTS", counts[False], counts[True])
"""


@needs_jax
def test_fusion_removes_one_convolution_per_shared_tensor():
    """The median cell's step: u feeds 2 full convs, c and h each 2 separable ones (depthwise +
    pointwise), x one 1x1 projection: 11 convolutions; fusing saves one for each of u, c, h."""
    line = [ln for ln in run_under_jax(COUNT_SCRIPT).splitlines() if ln.startswith("COUNTS")]
    plain, fused = map(int, line[0].split()[1:])
    assert (plain, fused) == (11, 8)
