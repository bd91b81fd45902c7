"""Released graphs: exact parameter counts (spec §6.1) and the override mechanism."""
import numpy as np
import pytest

from tpu_convrnn import build_model

from tpu_convrnn.model import zoo

# Spec §6.1, typed in again here (not read from zoo.PARAM_COUNTS) so the table itself is checked.
SPEC_COUNTS = {
    "rgc_shallow": 23956840, "timedecay_shallow": 4197739, "simplernn_shallow": 6272872,
    "gru_shallow": 25434472, "lstm_shallow": 21126248, "intersectionrnn_shallow": 32513384,
    "ugrnn_shallow": 18355560, "rgc_intermediate": 15445800, "rgc_intermediate_dthresh": 15445800,
    "rgc_intermediate_tmaxconf": 15445801, "rgc_intermediate_t22_tmaxconf": 15445801,
    "timedecay_intermediate": 16403439, "simplernn_intermediate": 33512936,
    "gru_intermediate": 67725032, "lstm_intermediate": 84832232,
    "intersectionrnn_intermediate": 84832232, "ugrnn_intermediate": 50617832,
    "ugrnn_intermediate_t30": 50617832, "ugrnn_intermediate_t30_dthresh": 50617832,
    "ugrnn_intermediate_t30_tmaxconf": 50617833, "shallow_base": 4197736,
    "intermediate_base": 16403432, "rgc_intermediate_scaffold": 6054376,
}


def test_twenty_released_models():
    assert len(zoo.RELEASED_MODELS) == 20
    assert set(zoo.RELEASED_MODELS) | set(zoo.BASELINES) == set(SPEC_COUNTS)
    assert zoo.PARAM_COUNTS == SPEC_COUNTS


@pytest.mark.parametrize("name", sorted(SPEC_COUNTS))
def test_param_count_is_exact(name):
    model = build_model(name)
    assert model.count_params() == SPEC_COUNTS[name]
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == SPEC_COUNTS[name]


@pytest.mark.parametrize("name,times,image_off,readout", [
    ("rgc_shallow", 16, 12, "last"), ("ugrnn_intermediate", 17, 12, "last"),
    ("ugrnn_intermediate_t30_dthresh", 30, None, "thresh"),
    ("rgc_intermediate_t22_tmaxconf", 22, None, "max_conf")])
def test_default_presentation_and_readout(name, times, image_off, readout):
    cfg = zoo.released_graph(name)
    assert (cfg["times"], cfg["image_off"]) == (times, image_off)
    assert cfg.get("readout", {"kind": "last"})["kind"] == readout


def test_rgc_intermediate_feedback_and_harbor_order():
    model = build_model("rgc_intermediate", image_size=64)
    assert model.other_sources["conv6"] == ["conv7", "conv9"]  # lexicographic, after ff
    assert model.ff_source["conv6"] == "conv5"
    assert model.other_sources["conv7"] == ["conv10"]
    assert model.graph_nodes["conv6"].cell.feedback_depth == 768


def test_presentations():
    assert zoo.graph_config("rgc_shallow", presentation="neural")["times"] == 26
    assert zoo.graph_config("rgc_shallow", presentation="neural")["image_off"] == 10
    assert zoo.graph_config("rgc_shallow", presentation="constant")["image_off"] is None
    custom = zoo.graph_config("rgc_shallow", times=20, image_off=8)
    assert (custom["times"], custom["image_off"]) == (20, 8)
    with pytest.raises(ValueError, match="custom image_off needs a custom times"):
        zoo.graph_config("rgc_shallow", image_off=8)


def test_overrides_put_any_cell_anywhere():
    model = build_model("rgc_shallow", image_size=96, cells={
        "conv2": {"kind": "gru", "depth": 32}, "conv4": None},
        depths={"conv3": 96}, add_edges=[["conv5", "conv3"]], times=8, image_off=None)
    assert model.graph_nodes["conv2"].cell.depth == 32
    assert model.graph_nodes["conv4"].cell is None
    assert model.output_shapes["conv3"][-1] == 96
    assert model.other_sources["conv3"] == ["conv5"]
    assert tuple(model(np.zeros((1, 96, 96, 3), "float32")).shape) == (1, 1000)


def test_too_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match=r"node 'imnetds' pre: a 2x2 'valid' conv.*got 1x1"):
        build_model("rgc_shallow", image_size=64)


@pytest.mark.parametrize("kwargs,match", [
    (dict(cells={"conv9": None}), "cells: unknown layer 'conv9'"),
    (dict(remove_edges=[["conv5", "conv1"]]), "conv5 -> conv1 is not an edge"),
    (dict(presentation="flash"), "presentation 'flash'"),
])
def test_override_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.graph_config("rgc_shallow", **kwargs)


def test_unknown_model_lists_the_names():
    with pytest.raises(ValueError, match="unknown model 'rgc_large'.*rgc_shallow"):
        zoo.released_graph("rgc_large")


def test_width_and_num_classes_follow_the_closed_form():
    # shallow_base (spec §3.1) at half width with a 10-way readout, counted by hand:
    # conv k*k*c_in*c_out + c_out per layer; the readout conv is 2x2 over 256 channels.
    def conv(k, cin, cout):
        return k * k * cin * cout + cout
    expected = (conv(7, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + conv(3, 128, 128)
                + conv(3, 128, 256) + conv(2, 256, 10))
    model = build_model("shallow_base", width=0.5, num_classes=10, image_size=96)
    assert model.count_params() == expected
    assert model.num_classes == 10


def test_width_scales_cell_depths():
    cfg = zoo.graph_config("simplernn_shallow", width=0.25)
    conv3 = [n for n in cfg["nodes"] if n["name"] == "conv3"][0]
    assert conv3["pre"][0]["filters"] == 64 and conv3["memory"]["depth"] == 32
    assert cfg["nodes"][-1]["pre"][0]["filters"] == 1000  # the readout keeps its classes
    with pytest.raises(ValueError, match="width: expected a positive"):
        zoo.graph_config("rgc_shallow", width=0)


def test_grow_image_size_finds_the_smallest_size_the_graph_takes():
    # shallow: conv1 stride 2 and five SAME 2x2 pools give ceil(s / 64); the readout's 2x2
    # valid conv needs >= 2, so s >= 65: the first multiple of 8 is 72.
    grown = build_model("shallow_base", image_size=32, grow_image_size=True)
    assert grown.image_size == 72
    assert build_model("shallow_base", image_size=96, grow_image_size=True).image_size == 96
    # the size found is the config's: a model rebuilt from it takes 72 px with no flag
    config = grown.get_config()
    assert config["image_size"] == 72 and "grow_image_size" not in config
    assert type(grown).from_config(config).image_size == 72
    with pytest.raises(ValueError, match="node 'imnetds' pre: a 2x2 'valid' conv"):
        build_model("shallow_base", image_size=32)


def test_grow_image_size_leaves_the_initial_weights_alone():
    """At a size that needs no growth, the same seed gives the same initial weights with and
    without grow_image_size (finding the size draws no seeds)."""
    import keras
    weights = []
    for grow in (False, True):
        keras.utils.set_random_seed(3)
        model = build_model("rgc_intermediate", image_size=32, width=0.125, times=12,
                            grow_image_size=grow)
        weights.append({v.path: np.asarray(v) for v in model.weights})
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 100
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k], err_msg=k)
