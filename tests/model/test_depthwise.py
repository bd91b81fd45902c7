"""Depthwise convolution with custom kernel gradients: the same values and gradients as the
native op (TensorFlow here, JAX in a subprocess), and the separable layer built on it."""
import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

from jax_subprocess import needs_jax, run_under_jax
from tpu_convrnn.model import depthwise, execution
from tpu_convrnn.model.cells.reciprocal import ReciprocalGatedCell

# (input shape, kernel size): odd, even and rectangular kernels, maps smaller than the kernel
CASES = [((2, 9, 11, 5), (7, 7)), ((2, 8, 8, 3), (2, 2)), ((1, 5, 6, 4), (3, 2)),
         ((3, 3, 3, 6), (7, 7))]


def _value_and_grads(method, x, k, r):
    xv, kv = tf.constant(x), tf.constant(k)
    with tf.GradientTape() as tape:
        tape.watch([xv, kv])
        y = depthwise.depthwise_conv_same(xv, kv, method)
        loss = tf.reduce_sum(y * r)
    gx, gk = tape.gradient(loss, [xv, kv])
    return y.numpy(), gx.numpy(), gk.numpy()


@pytest.mark.parametrize("shape,ksize", CASES)
@pytest.mark.parametrize("method", ["taps", "rows", "shifts"])
def test_custom_kernel_gradient_matches_native(method, shape, ksize):
    rng = np.random.default_rng(hash((method, shape)) % 2**32)
    x = rng.normal(size=shape).astype("float32")
    k = rng.normal(size=ksize + (shape[-1], 1)).astype("float32")
    r = rng.normal(size=shape).astype("float32")
    y, gx, gk = _value_and_grads(method, x, k, r)
    y0, gx0, gk0 = _value_and_grads("native", x, k, r)
    np.testing.assert_allclose(y0, ref.depthwise(x, k), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gk, gk0, rtol=1e-4, atol=1e-4)


def test_bad_method_and_unsupported_layer_are_named():
    with pytest.raises(ValueError, match="depthwise method 'fast'.*native, taps, rows, shifts"):
        depthwise.resolve_method("fast")
    with pytest.raises(ValueError, match="'sep'.*only stride 1, SAME"):
        depthwise.SeparableConv2D(4, 3, strides=2, padding="same", name="sep")
    assert depthwise.resolve_method("auto") == "native"  # TensorFlow backend


@pytest.mark.parametrize("method", ["native", "rows", "shifts"])
def test_separable_layer_equals_keras_layer(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 10, 10, 6)).astype("float32")
    ours = depthwise.SeparableConv2D(5, 7, padding="same", name="sep")
    ref = keras.layers.SeparableConv2D(5, 7, padding="same", name="sep")
    ours.build(x.shape)
    ref.build(x.shape)
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    for a, b in zip(ours.weights, ref.weights):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    with execution.settings(depthwise=method):
        np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert "depthwise_method" not in ours.get_config()
    # a config that holds the method as a layer argument is refused, naming it
    with pytest.raises(TypeError, match="'depthwise_method'"):
        depthwise.SeparableConv2D.from_config({**ours.get_config(), "depthwise_method": method})


def test_cell_gradients_do_not_depend_on_the_method():
    """A reciprocal gated cell with depth-separable tau/gate convs: the loss gradient of every
    weight is the same whichever way the depthwise kernel gradient is computed."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    c0 = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    h0 = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    grads = {}
    for method in ("native", "rows", "taps", "shifts"):
        keras.utils.set_random_seed(0)
        cell = ReciprocalGatedCell(out_depth=8, cell_depth=4, tau_filter_size=5,
                                   gate_filter_size=3, tau_depth_separable=True,
                                   gate_depth_separable=True)
        cell.build(u.shape)
        with tf.GradientTape() as tape, execution.settings(depthwise=method):
            h, (c, _) = cell(u, (c0, h0))
            loss = tf.reduce_sum(h * h) + tf.reduce_sum(c)
        grads[method] = [g.numpy() for g in tape.gradient(loss, cell.trainable_variables)]
    assert len(grads["native"]) >= 8
    for method in ("rows", "taps", "shifts"):
        for a, b in zip(grads[method], grads["native"]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


JAX_SCRIPT = r"""
import numpy as np, jax, keras
from keras import ops
from tpu_convrnn.model import depthwise, execution
assert depthwise.resolve_method("auto") == "rows"  # JAX on CPU
rng = np.random.default_rng(0)
x = rng.normal(size=(2, 9, 7, 6)).astype("float32")
k = rng.normal(size=(7, 7, 6, 1)).astype("float32")
r = rng.normal(size=x.shape).astype("float32")
out = {}
for m in depthwise.METHODS:
    f = lambda x, k: ops.sum(depthwise.depthwise_conv_same(x, k, m) * r)
    out[m] = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(x, k)
for m in ("taps", "rows", "shifts"):
    for a, b in zip(jax.tree_util.tree_leaves(out[m]), jax.tree_util.tree_leaves(out["native"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
# bfloat16 (the GPU runs): the output keeps the input's dtype and matches float32 to bf16 round-off
xb, kb = x.astype(jax.numpy.bfloat16), k.astype(jax.numpy.bfloat16)
for m in depthwise.METHODS:
    y = depthwise.depthwise_conv_same(xb, kb, m)
    assert y.dtype == jax.numpy.bfloat16, (m, y.dtype)
    y32 = depthwise.depthwise_conv_same(xb.astype("float32"), kb.astype("float32"), "native")
    err = np.abs(np.asarray(y, np.float32) - np.asarray(y32)).max() / np.abs(np.asarray(y32)).max()
    assert err < 2e-2, (m, err)
print("OK")
"""


@needs_jax
def test_same_gradients_under_jax():
    assert "OK" in run_under_jax(JAX_SCRIPT)


def test_the_setting_reaches_every_separable_conv(monkeypatch):
    import tpu_convrnn
    model = tpu_convrnn.build_model("rgc_intermediate", image_size=32, times=12, width=0.25,
                                    num_classes=10)
    seps = [layer for layer in model._flatten_layers()
            if isinstance(layer, depthwise.SeparableConv2D)]
    assert len(seps) == 7 * 4  # conv4-conv10: four depth-separable tau/gate convs per cell
    used = []
    run = depthwise.depthwise_conv_same
    monkeypatch.setattr(depthwise, "depthwise_conv_same",
                        lambda x, k, method: used.append(method) or run(x, k, method))
    x = np.zeros((1, 32, 32, 3), "float32")
    with execution.settings(depthwise="rows"):
        model(x)
    assert len(used) >= len(seps) and set(used) == {"rows"}
    assert "depthwise" not in str(model.get_config())
    with pytest.raises(ValueError, match="depthwise = 'fastest': expected one of auto, native"):
        execution.set_default(depthwise="fastest")
