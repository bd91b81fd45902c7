import numpy as np
import pytest
from keras import ops

import numpy_reference as ref
from tpu_convrnn.model import tf1_ops


@pytest.mark.parametrize("src,dst", [((7, 7), (28, 28)), ((4, 4), (14, 14)), ((4, 4), (7, 7)),
                                     ((5, 3), (2, 6)), ((1, 1), (3, 3))])
def test_resize_bilinear_aligned_matches_numpy(src, dst):
    x = np.random.default_rng(0).normal(size=(2,) + src + (3,)).astype("float32")
    got = ops.convert_to_numpy(tf1_ops.resize_bilinear_aligned(x, dst))
    np.testing.assert_allclose(got, ref.resize_bilinear_aligned(x, dst), rtol=1e-5, atol=1e-5)
    # corners are copied exactly (align_corners=True)
    np.testing.assert_allclose(got[:, 0, 0], x[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(got[:, -1, -1], x[:, -1, -1], atol=1e-6)


def test_resize_same_size_is_identity():
    x = np.ones((1, 4, 4, 2), "float32")
    assert tf1_ops.resize_bilinear_aligned(x, (4, 4)) is x


def test_layer_norm_hwc_matches_contrib_semantics():
    x = np.random.default_rng(1).normal(size=(3, 4, 5, 6)).astype("float32") * 3 + 1
    norm = tf1_ops.LayerNormHWC()
    norm.build(x.shape)
    rng = np.random.default_rng(2)
    gamma, beta = rng.normal(1, 0.1, 6).astype("float32"), rng.normal(0, 0.1, 6).astype("float32")
    norm.set_weights([gamma, beta])
    assert norm.gamma.shape == (6,) and norm.epsilon == 1e-12
    got = ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(got, ref.layer_norm_hwc(x, gamma, beta), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,k,s,want", [(224, 7, 2, (2, 3)), (7, 2, 2, (0, 1)), (5, 2, 1, (0, 1)),
                                        (5, 4, 1, (1, 2)), (5, 3, 1, (1, 1))])
def test_same_padding_rule(n, k, s, want):
    assert tf1_ops.same_padding(n, k, s) == want  # spec §2: conv1 pads 2 before, 3 after


@pytest.mark.parametrize("k", [2, 4])
def test_keras_same_conv_pads_bottom_right_for_even_kernels(k):
    import keras
    x = np.random.default_rng(3).normal(size=(1, 5, 5, 2)).astype("float32")
    conv = keras.layers.Conv2D(3, k, padding="same")
    conv.build(x.shape)
    w, b = conv.get_weights()
    np.testing.assert_allclose(ops.convert_to_numpy(conv(x)), ref.conv2d(x, w, b), rtol=1e-5,
                               atol=1e-5)


def test_tf1_l2_halves_the_scale():
    assert tf1_ops.tf1_l2(0) is None
    w = np.full((3,), 2.0, "float32")
    assert float(tf1_ops.tf1_l2(1e-4)(w)) == pytest.approx(1e-4 * 12 / 2)


def test_unknown_activation_names_where():
    with pytest.raises(ValueError, match=r"conv3 cell_activation: unknown activation 'gelu2'"):
        tf1_ops.get_activation("gelu2", "conv3 cell_activation")
