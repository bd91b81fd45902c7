import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import SimpleRNNCell


@pytest.mark.parametrize("layer_norm", [False, True])
def test_matches_numpy(layer_norm):
    cell = SimpleRNNCell(depth=8, layer_norm=layer_norm)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=3)
    drives = random_inputs(4, 4, (2, 5, 5, 6))
    outs, _ = unroll(cell, drives)
    h = np.zeros((2, 5, 5, 8))
    for t, u in enumerate(drives):
        a = ref.conv2d(u, weight(w, "/i/kernel"), weight(w, "/i/bias")) + \
            ref.conv2d(h, weight(w, "/s/kernel"), weight(w, "/s/bias"))
        if layer_norm:
            a = ref.layer_norm_hwc(a, weight(w, "gamma"), weight(w, "beta"))
        h = ref.elu(a)  # spec §4.2
        assert_close(outs[t], h, what=f"t={t}")


@pytest.mark.parametrize("k,i,d,ln,expected", [
    (3, 256, 128, True, 442_880),      # simplernn_shallow conv3 (spec §6.3 table)
    (3, 512, 256, True, 1_770_496),    # simplernn_shallow conv5
    (3, 128, 128, False, 295_168),     # simplernn_intermediate conv4
])
def test_param_count(k, i, d, ln, expected):
    cell = SimpleRNNCell(depth=d, kernel_size=k, layer_norm=ln)
    cell.build((1, 4, 4, i))
    closed_form = k * k * i * d + d + k * k * d * d + d + (2 * d if ln else 0)
    assert cell.count_params() == closed_form == expected


@pytest.mark.parametrize("eps", [1e-12, 1e-3])
def test_layer_norm_epsilon_sets_the_slope_on_a_blank_step(eps):
    """Before the image arrives a cell sees zero drive and zero state, so its pre-norm map is
    the (zero) biases: a constant map, where the H,W,C norm's slope is 1/sqrt(epsilon). The
    gradient of sum(w * h) with respect to the input bias is then, per channel c,
    sum over positions of (w - mean_HWC(w)) / sqrt(eps) (elu'(0) = 1, gamma = 1)."""
    import tensorflow as tf
    cell = SimpleRNNCell(depth=4, layer_norm=True, layer_norm_epsilon=eps)
    cell.build((2, 3, 3, 5))
    assert cell.get_config()["layer_norm_epsilon"] == eps
    w = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    bias = next(v for v in cell.trainable_variables if v.path.endswith("i/bias"))
    with tf.GradientTape() as tape:
        h, _ = cell(tf.zeros((2, 3, 3, 5)), cell.get_initial_state(2))
        loss = tf.reduce_sum(tf.constant(w) * h)
    got = tape.gradient(loss, bias.value).numpy()
    w64 = w.astype(np.float64)
    want = ((w64 - w64.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(eps)).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-4)
