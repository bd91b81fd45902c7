"""FLOP counting (tpu_convrnn/tools/flops.py) against hand-computed counts."""
import numpy as np
import pytest
from jax_subprocess import needs_jax, run_under_jax

import tpu_convrnn
from tpu_convrnn.model import execution
from tpu_convrnn.tools import flops
from tpu_convrnn.tools.flops import count_flops, reaching_steps
from tpu_convrnn.model.graph import ConvRNN

CONV = 2 * 8 * 8 * (3 * 3 * 3) * 4   # 3x3 conv, 3 -> 4 channels, 8x8 output
FC = 2 * 4 * 7                       # fc 4 -> 7 after global average pooling


def tiny(memory):
    nodes = [{"name": "conv1", "pre": [{"op": "conv", "filters": 4, "kernel_size": 3}],
              "memory": memory},
             {"name": "out", "pre": ["gap", {"op": "fc", "units": 7}]}]
    return ConvRNN(nodes, [["conv1", "out"]], times=3, image_size=8)


@pytest.mark.parametrize("memory,reaching_conv_steps", [(None, 1), ({"kind": "time_decay"}, 2)])
def test_counts_and_loss_reaching_work(memory, reaching_conv_steps):
    f = count_flops(tiny(memory))
    assert f["per_node_step"] == {"conv1": CONV, "out": FC}
    assert f["forward_executed"] == 3 * CONV + FC        # readout only in its window (t = 2)
    # without memory only conv1 at t=1 feeds the readout at t=2; with a cell t=0 does too
    assert f["forward_to_loss"] == reaching_conv_steps * CONV + FC
    assert f["train_step"] == 3 * f["forward_to_loss"]


def test_counts_after_work_elimination():
    """conv1 (no memory) -> conv2 (time decay) -> out, the image at every step, T = 4: the
    readout at t = 3 reads conv2 at t = 2, which reads its own steps 0, 1 and conv1 at t = 0, 1.
    conv1 sees the same frame at both: run once. conv2 at t = 0 reads zeros and its zero state:
    the same for every image, run once per batch."""
    c1 = 2 * 8 * 8 * (3 * 3 * 3) * 4
    c2 = 2 * 8 * 8 * (3 * 3 * 4) * 5
    fc = 2 * 5 * 7
    nodes = [{"name": "conv1", "pre": [{"op": "conv", "filters": 4, "kernel_size": 3}]},
             {"name": "conv2", "pre": [{"op": "conv", "filters": 5, "kernel_size": 3}],
              "memory": {"kind": "time_decay"}},
             {"name": "out", "pre": ["gap", {"op": "fc", "units": 7}]}]
    model = ConvRNN(nodes, [["conv1", "conv2"], ["conv2", "out"]], times=4, image_size=8)
    f = count_flops(model, batch=4)
    assert f["forward_to_loss"] == 2 * c1 + 3 * c2 + fc
    assert f["forward_image_dependent"] == c1 + 2 * c2 + fc
    assert f["forward_once_per_batch"] == c2
    assert f["forward_eliminated"] == c1 + 2 * c2 + fc + c2 / 4
    assert f["train_step_eliminated"] == 3 * f["forward_eliminated"]


@pytest.mark.parametrize("method", ["native", "rows", "shifts"])
def test_separable_and_depthwise_counted(method):
    """The same hand count however the depthwise convs run (``shifts`` has no conv op)."""
    cell = {"kind": "median_reciprocal_gated", "cell_depth": 2}
    model = ConvRNN([{"name": "c", "pre": [{"op": "conv", "filters": 4, "kernel_size": 1}],
                      "memory": cell},
                     {"name": "out", "pre": ["gap", {"op": "fc", "units": 3}]}],
                    [["c", "out"]], times=2, image_size=4)
    hw = 16
    pre = 2 * hw * 3 * 4
    in_cell = 2 * hw * (2 * 2 * 4) * 2            # 2x2 conv 4 -> 2
    in_out = 2 * hw * (3 * 3 * 4) * 4             # 3x3 conv 4 -> 4
    proj = 2 * hw * 3 * 4                         # residual projection 3 -> 4
    ds = (lambda c_in, c_out: 2 * hw * 49 * c_in + 2 * hw * c_in * c_out)
    cell_flops = in_cell + in_out + proj + ds(2, 2) + ds(4, 2) + ds(4, 4) + ds(2, 4)
    with execution.settings(depthwise=method):
        assert count_flops(model)["per_node_step"]["c"] == pre + cell_flops


def test_rgc_intermediate_feedback_reaches_through_time():
    model = tpu_convrnn.build_model("rgc_intermediate", image_size=32)
    reach = reaching_steps(model)
    assert reach["imnetds"] == {16}
    assert max(reach["conv1"]) == 16 - 10  # ten edges from conv1 to the readout
    assert reach["conv10"] == set(range(16))  # a cell: every earlier step can still matter
    f = count_flops(model)
    assert 0 < f["forward_to_loss"] < f["forward_executed"]
    assert np.isclose(f["train_step"], 3 * f["forward_to_loss"])


XLA_SCRIPT = r"""
import json
from tpu_convrnn.tools.flops import count_flops, xla_cost_flops
from tpu_convrnn.model.graph import ConvRNN

def conv(f, padding, name):
    return {"op": "conv", "filters": f, "kernel_size": 3, "padding": padding, "name": name}

out = {}
for padding in ("valid", "same"):
    nodes = [{"name": "conv1", "pre": [conv(16, padding, "pre_0")]},
             {"name": "conv2", "pre": [conv(32, padding, "pre_0")], "post": ["maxpool"]},
             {"name": "conv3", "pre": [conv(32, padding, "pre_0")]},
             {"name": "out", "pre": ["gap", {"op": "fc", "units": 10, "name": "fc"}]}]
    model = ConvRNN(nodes, [["conv1", "conv2"], ["conv2", "conv3"], ["conv3", "out"]], times=4,
                    image_size=32, name=padding)
    out[padding] = [count_flops(model)["forward_to_loss"], xla_cost_flops(model)]
print(json.dumps(out))
"""


@needs_jax
def test_flop_count_agrees_with_xla_cost_analysis_for_valid_convolutions():
    """XLA's CPU cost analysis (JAX backend, in a subprocess) against the dense count."""
    import json
    res = json.loads(run_under_jax(XLA_SCRIPT).strip().splitlines()[-1])
    ours, xla = res["valid"]
    # the hand count (2 x outputs x taps x channels): 32 -> 30 -> 28 (pool 14) -> 12, then fc
    assert ours == 2 * (30 * 30 * 27 * 16 + 28 * 28 * 9 * 16 * 32 + 12 * 12 * 9 * 32 * 32 + 32 * 10)
    assert ours <= xla <= 1.03 * ours, res  # XLA adds the elementwise ops (bias, pool, gap)
    ours, xla = res["same"]
    assert xla < ours, res  # XLA leaves out the taps that fall on SAME padding


def test_a_keras_model_is_counted_from_its_layers():
    """A functional Keras model (strided, depthwise, separable and dense layers), counted by
    hand; the count runs nothing, so an unbuilt layer counts 0."""
    import keras
    x = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)         # 5x5x8
    h = keras.layers.DepthwiseConv2D(3, padding="valid")(h)             # 3x3x8
    h = keras.layers.SeparableConv2D(4, 2, padding="same")(h)           # 3x3x4
    h = keras.layers.Dense(6)(h)                                        # per pixel 4 -> 6
    model = keras.Model(x, h)
    hand = (2 * 25 * 3 * 3 * 3 * 8 + 2 * 9 * 3 * 3 * 8 + (2 * 9 * 2 * 2 * 8 + 2 * 9 * 8 * 4)
            + 2 * 9 * 4 * 6)
    assert flops.keras_model_flops(model) == hand
    assert flops.layer_flops(keras.layers.Conv2D(3, 3)) == 0


def test_count_is_the_same_with_fused_cell_convolutions():
    """Model FLOPs come from each layer's own kernel, not from the fused (zero-padded) one."""
    model = tpu_convrnn.build_model("rgc_intermediate", image_size=32, times=12, width=0.25)
    counts = []
    for fuse in (True, False):
        with execution.settings(fuse_convs=fuse):
            counts.append(count_flops(model))
    assert counts[0]["forward_executed"] == counts[1]["forward_executed"]
    assert counts[0]["per_node_step"] == counts[1]["per_node_step"]
