"""The occluded-digit models (Spoerer et al. 2017 in the graph language): parameter counts from
the layers' shapes, the matched controls, the image's arrival at the readout, and BL's lateral
connection as the only difference from B."""
import numpy as np
import pytest

from tpu_convrnn import build_model
from tpu_convrnn.model import zoo


def conv(cin, cout, k):
    return k * k * cin * cout + cout


# Counted from the layers: the image has 3 channels, conv1 and conv2 keep 32x32 and 16x16
# maps (two 2x2 pools leave 8x8), the readout is fully connected (an 8x8 valid conv) to 10.
B = conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 10, 8)
LATERAL = 2 * conv(32, 32, 3)
COUNTS = {
    "spoerer_b": B,
    "spoerer_b_k": conv(3, 32, 5) + conv(32, 32, 5) + conv(32, 10, 8),
    "spoerer_b_f": conv(3, 46, 3) + conv(46, 46, 3) + conv(46, 10, 8),
    "spoerer_bl": B + LATERAL,
    # top-down: conv1's bottom-up conv also reads conv2's 32 maps (upsampled, concatenated)
    "spoerer_bt": B + conv(35, 32, 3) - conv(3, 32, 3),
    "spoerer_blt": B + LATERAL + conv(35, 32, 3) - conv(3, 32, 3),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_follow_from_the_layers(name):
    assert build_model(name, image_size=32).count_params() == COUNTS[name]


def test_feedforward_controls_are_matched_to_bl_within_three_percent():
    for control in ("spoerer_b_k", "spoerer_b_f"):
        assert abs(COUNTS[control] / COUNTS["spoerer_bl"] - 1) < 0.03
    assert set(zoo.DIGIT_MODELS) == set(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_the_image_reaches_the_readout_at_step_two_of_six(name):
    model = build_model(name, image_size=32)
    assert model.times == 6
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    logits = [np.asarray(v) for v in model.unroll(images, record=["logits"])["logits"]]
    for t in range(6):
        differ = not np.allclose(logits[t][0], logits[t][1])
        assert differ == (t >= 2), (name, t)  # before t = 2 the readout has not seen the image
    changes = [not np.allclose(logits[t], logits[t - 1], atol=1e-6) for t in range(3, 6)]
    recurrent = name in ("spoerer_bl", "spoerer_bt", "spoerer_blt")
    assert any(changes) == recurrent, name  # feedforward nets settle at once


def test_bl_is_b_plus_the_lateral_conv():
    b, bl = build_model("spoerer_b", image_size=32), build_model("spoerer_bl", image_size=32)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    shared = {w.path.split("/", 1)[1]: w for w in b.weights}
    for w in bl.weights:
        key = w.path.split("/", 1)[1]
        if key in shared:
            w.assign(shared[key])
        else:  # the lateral convs, zeroed: BL becomes B at every step
            assert "LateralCell" in w.path or "lateral" in w.path.lower(), w.path
            w.assign(np.zeros(w.shape, "float32"))
    np.testing.assert_allclose(np.asarray(bl(images)), np.asarray(b(images)), rtol=1e-5,
                               atol=1e-5)
