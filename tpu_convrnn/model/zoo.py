"""The 20 released ConvRNNs (spec §0, §3-§5) and their feedforward bases, as graph configs.

``released_graph(name)`` returns the plain-data graph (``nodes``, ``edges``, ``times``,
``image_off``, ``readout``) of a released model; ``graph_config(...)`` starts from one and applies
overrides (cells per layer, depths, feedback edges, T, presentation, readout), which is what gin
files configure. Sublayers carry the original's scope names (``pre_0``, ``post_0``,
``ConvLSTMCell``, ...) so original checkpoints map onto them (``tpu_convrnn.model.tf1_checkpoint``).
"""
from __future__ import annotations

import copy

from tpu_convrnn.model.cells import LSTM_SHALLOW, tf1_scope
from tpu_convrnn.model.initializers import (VARIANCE_SCALING, constant, random_normal,
                                             variance_scaling)

WD = 1e-4
READOUT_INIT = random_normal(0.01)
VS_SEED0 = variance_scaling(1.0, seed=0)


def _conv(filters, k, strides=1, activation=None, name="pre_0", padding="same",
          init=VARIANCE_SCALING, **kw):
    return {"op": "conv", "filters": filters, "kernel_size": k, "strides": strides,
            "padding": padding, "activation": activation, "weight_decay": WD,
            "kernel_initializer": init, "name": name, **kw}


def _chain(names):
    return [[a, b] for a, b in zip(names, names[1:])]


# ---------------------------------------------------------------------------------- cells
def _cell(kind, **kw):
    return {"kind": kind, "name": tf1_scope(kind), **kw}


def _family_cell(family, depth, layer):
    """Cell config of a released family at a layer whose pre-conv gives ``depth`` channels."""
    shallow_narrow = {"conv3": 128, "conv4": 256, "conv5": 256}
    if family == "rgc":
        return _cell("reciprocal_gated", input_to_cell=True, residual_to_out_gate=True,
                     weight_decay=WD)
    if family == "timedecay":
        return _cell("time_decay")
    if family == "simplernn_shallow":
        return _cell("simple_rnn", depth=shallow_narrow[layer], layer_norm=True, weight_decay=WD)
    if family == "simplernn":
        return _cell("simple_rnn", depth=depth, weight_decay=WD)
    if family in ("gru", "ugrnn", "intersectionrnn", "lstm"):
        kind = {"intersectionrnn": "intersection_rnn"}.get(family, family)
        return _cell(kind, depth=depth, weight_decay=WD)
    if family == "lstm_shallow":
        return _cell("lstm", **LSTM_SHALLOW[layer])
    if family == "median_rgc":
        return _cell("median_reciprocal_gated")
    raise ValueError(f"unknown cell family {family!r}")


# ---------------------------------------------------------------------------------- skeletons
def shallow_nodes(family=None, pre_activation=None):
    """Shallow skeleton (spec §3.1); cells in conv3-conv5 (``family=None``: feedforward)."""
    nodes = [{"name": "conv1", "pre": [_conv(64, 7, 2, "elu")], "post": ["maxpool"]},
             {"name": "conv2", "pre": [_conv(128, 3, 1, "elu")], "post": ["maxpool"]}]
    for layer, depth in (("conv3", 256), ("conv4", 256), ("conv5", 512)):
        memory = None if family is None else _family_cell(family, depth, layer)
        nodes.append({"name": layer, "pre": [_conv(depth, 3, 1, pre_activation)],
                      "memory": memory, "post": ["maxpool"]})
    nodes.append({"name": "imnetds", "pre": [_conv(
        1000, 2, padding="valid", init=READOUT_INIT, name="pre_1")], "post": ["gap"]})
    return nodes


def _fc_readout():
    return {"name": "imnetds", "pre": ["gap", {
        "op": "fc", "units": 1000, "kernel_initializer": READOUT_INIT,
        "bias_initializer": constant(1.0), "weight_decay": WD, "name": "pre_3"}]}


RESIDUAL_LAYERS = (("conv2", 64, False), ("conv3", 64, False), ("conv4", 128, True),
                   ("conv5", 128, False), ("conv6", 256, True), ("conv7", 256, True),
                   ("conv8", 512, False), ("conv9", 512, False), ("conv10", 512, True))


def residual_nodes(family=None):
    """Intermediate residual skeleton (spec §3.2); cells in conv4-conv10."""
    nodes = [{"name": "conv1", "pre": [_conv(64, 7, 2)], "post": ["elu", "maxpool"]}]
    for layer, depth, pool in RESIDUAL_LAYERS:
        cell = None if family is None or layer in ("conv2", "conv3") else \
            _family_cell(family, depth, layer)
        post = [_conv(depth, 3, name="post_0", init=VARIANCE_SCALING),
                {"op": "residual_add", "name": "post_1"}, "elu"] + (["maxpool"] if pool else [])
        nodes.append({"name": layer, "pre": [_conv(depth, 3, 1, "elu", init=VS_SEED0)],
                      "memory": cell, "post": post})
    return nodes + [_fc_readout()]


RGC_LAYERS = (("conv2", 128, False), ("conv3", 128, False), ("conv4", 128, True),
              ("conv5", 128, False), ("conv6", 256, True), ("conv7", 256, True),
              ("conv8", 256, False), ("conv9", 512, False), ("conv10", 512, True))
RGC_FEEDBACK = [["conv8", "conv5"], ["conv7", "conv6"], ["conv9", "conv6"], ["conv10", "conv7"],
                ["conv10", "conv9"]]


def rgc_intermediate_nodes(with_cells=True):
    """RGC-intermediate skeleton (spec §3.3): median reciprocal gated cells in conv4-conv10.
    Without cells, conv4-conv10 get the ELU that the cell would have applied."""
    nodes = [{"name": "conv1", "pre": [_conv(64, 7, 2, init=VS_SEED0)],
              "post": ["elu", "maxpool"]}]
    for layer, depth, pool in RGC_LAYERS:
        cell = _family_cell("median_rgc", depth, layer) if with_cells and \
            layer not in ("conv2", "conv3") else None
        post = ([] if cell else ["elu"]) + (["maxpool"] if pool else [])
        nodes.append({"name": layer, "pre": [_conv(depth, 3, 1, init=VS_SEED0)],
                      "memory": cell, "post": post})
    return nodes + [_fc_readout()]


# ---------------------------------------------------------------------------------- digits
# Spoerer, McClure & Kriegeskorte 2017 (Front. Psychol. 8:1551) at their 32 px resolution: two
# conv layers on the full 32x32 and 16x16 maps and a fully connected readout of the pooled
# 8x8 map, 10 classes. B is feedforward; L adds a lateral conv in each layer (the ``lateral`` cell),
# T a top-down edge conv2 -> conv1 (upsampled and concatenated with conv1's input, so conv1's
# bottom-up conv also reads it). The feedforward controls are matched to BL's parameters with
# larger kernels (B-K) or more feature maps (B-F). T = 6 (constant image): the image reaches
# the readout at t = 2 in every model, which leaves the 4 steps the original unrolled.
DIGIT_MAPS = 32
DIGIT_TIMES = dict(times=6, image_off=None)


def digit_nodes(maps=DIGIT_MAPS, kernel=3, lateral=False):
    """conv1 (32x32) -> maxpool -> conv2 (16x16) -> maxpool -> a linear readout of the 8x8 map
    (an 8x8 'valid' conv: fully connected) -> 10 logits. Each layer: bottom-up conv (linear)
    -> cell (``lateral``: the lateral conv) -> ReLU."""
    cell = {"kind": "lateral", "name": "LateralCell", "kernel_size": kernel,
            "weight_decay": WD} if lateral else None
    return [{"name": "conv1", "pre": [_conv(maps, kernel)], "memory": cell,
             "post": ["relu", "maxpool"]},
            {"name": "conv2", "pre": [_conv(maps, kernel)], "memory": copy.deepcopy(cell),
             "post": ["relu", "maxpool"]},
            {"name": "readout", "pre": [_conv(10, 8, padding="valid", name="fc")],
             "post": ["gap"]}]


def _digits(top_down=False, **kw):
    nodes = digit_nodes(**kw)
    edges = _chain([n["name"] for n in nodes]) + ([["conv2", "conv1"]] if top_down else [])
    return dict(nodes=nodes, edges=edges, **DIGIT_TIMES)


# ---------------------------------------------------------------------------------- registry
SHALLOW = dict(times=16, image_off=12)
INTERMEDIATE = dict(times=17, image_off=12)


def _shallow(family, pre_activation=None):
    nodes = shallow_nodes(family, pre_activation)
    return dict(nodes=nodes, edges=_chain([n["name"] for n in nodes]), **SHALLOW)


def _residual(family, **pres):
    nodes = residual_nodes(family)
    return dict(nodes=nodes, edges=_chain([n["name"] for n in nodes]), **{**INTERMEDIATE, **pres})


def _rgc(with_cells=True, **pres):
    nodes = rgc_intermediate_nodes(with_cells)
    edges = _chain([n["name"] for n in nodes]) + (RGC_FEEDBACK if with_cells else [])
    return dict(nodes=nodes, edges=edges, **{**INTERMEDIATE, **pres})


T30 = dict(times=30, image_off=None)
MAX_CONF = {"readout": {"kind": "max_conf"}}
THRESH = {"readout": {"kind": "thresh", "beta": 1.0, "threshold": 0.9}}

_RELEASED = {
    "timedecay_shallow": lambda: _shallow("timedecay"),
    "simplernn_shallow": lambda: _shallow("simplernn_shallow"),
    "gru_shallow": lambda: _shallow("gru"),
    "lstm_shallow": lambda: _shallow("lstm_shallow"),
    "intersectionrnn_shallow": lambda: _shallow("intersectionrnn"),
    "ugrnn_shallow": lambda: _shallow("ugrnn"),
    "rgc_shallow": lambda: _shallow("rgc", "elu"),
    "timedecay_intermediate": lambda: _residual("timedecay"),
    "simplernn_intermediate": lambda: _residual("simplernn"),
    "gru_intermediate": lambda: _residual("gru"),
    "lstm_intermediate": lambda: _residual("lstm"),
    "intersectionrnn_intermediate": lambda: _residual("intersectionrnn"),
    "ugrnn_intermediate": lambda: _residual("ugrnn"),
    "ugrnn_intermediate_t30": lambda: _residual("ugrnn", **T30),
    "ugrnn_intermediate_t30_tmaxconf": lambda: _residual("ugrnn", **T30, **MAX_CONF),
    "ugrnn_intermediate_t30_dthresh": lambda: _residual("ugrnn", **T30, **THRESH),
    "rgc_intermediate": lambda: _rgc(),
    "rgc_intermediate_tmaxconf": lambda: _rgc(**MAX_CONF),
    "rgc_intermediate_dthresh": lambda: _rgc(**THRESH),
    "rgc_intermediate_t22_tmaxconf": lambda: _rgc(times=22, image_off=None, **MAX_CONF),
}
_BASELINES = {
    # Feedforward bases with the cells removed (spec §6.1); unrolled like their families.
    "shallow_base": lambda: _shallow(None, "elu"),
    "intermediate_base": lambda: _residual(None),
    "rgc_intermediate_scaffold": lambda: _rgc(with_cells=False),
}
_DIGITS = {
    # The occluded-digit models (Spoerer et al. 2017): tpu_convrnn.data.debris.
    "spoerer_b": lambda: _digits(),
    "spoerer_b_k": lambda: _digits(kernel=5),
    "spoerer_b_f": lambda: _digits(maps=46),
    "spoerer_bl": lambda: _digits(lateral=True),
    "spoerer_bt": lambda: _digits(top_down=True),
    "spoerer_blt": lambda: _digits(lateral=True, top_down=True),
}
RELEASED_MODELS = tuple(_RELEASED)
BASELINES = tuple(_BASELINES)
DIGIT_MODELS = tuple(_DIGITS)

# Spec §6.1: trainable parameter counts of the original graphs.
PARAM_COUNTS = {
    "rgc_shallow": 23_956_840, "timedecay_shallow": 4_197_739, "simplernn_shallow": 6_272_872,
    "gru_shallow": 25_434_472, "lstm_shallow": 21_126_248,
    "intersectionrnn_shallow": 32_513_384, "ugrnn_shallow": 18_355_560,
    "rgc_intermediate": 15_445_800, "rgc_intermediate_dthresh": 15_445_800,
    "rgc_intermediate_tmaxconf": 15_445_801, "rgc_intermediate_t22_tmaxconf": 15_445_801,
    "timedecay_intermediate": 16_403_439, "simplernn_intermediate": 33_512_936,
    "gru_intermediate": 67_725_032, "lstm_intermediate": 84_832_232,
    "intersectionrnn_intermediate": 84_832_232, "ugrnn_intermediate": 50_617_832,
    "ugrnn_intermediate_t30": 50_617_832, "ugrnn_intermediate_t30_dthresh": 50_617_832,
    "ugrnn_intermediate_t30_tmaxconf": 50_617_833,
    "shallow_base": 4_197_736, "intermediate_base": 16_403_432,
    "rgc_intermediate_scaffold": 6_054_376,
}

PRESENTATIONS = ("default", "constant", "neural")


def released_graph(name: str) -> dict:
    """Graph config of a released model or feedforward base (fresh copy)."""
    table = {**_RELEASED, **_BASELINES, **_DIGITS}
    if name not in table:
        raise ValueError(f"unknown model {name!r}; released models: {', '.join(RELEASED_MODELS)}"
                         f"; feedforward bases: {', '.join(BASELINES)}; occluded-digit "
                         f"models: {', '.join(DIGIT_MODELS)}")
    return copy.deepcopy(table[name]())


def _scale_widths(nodes, width):
    """Multiplies channel counts of every node but the readout (the last) by ``width``."""
    if width <= 0:
        raise ValueError(f"width: expected a positive multiplier, got {width}")
    if width == 1.0:
        return
    for node in nodes[:-1]:
        for op in node.get("pre", []) + node.get("post", []):
            if isinstance(op, dict) and op.get("op") == "conv":
                op["filters"] = max(1, round(op["filters"] * width))
        memory = node.get("memory")
        for key in ("depth", "out_depth"):
            if memory and key in memory:
                memory[key] = max(1, round(memory[key] * width))


def _set_classes(node, num_classes):
    """Sets the output units of the readout node's last conv or fc op."""
    if num_classes < 1:
        raise ValueError(f"num_classes: expected a positive number, got {num_classes}")
    ops_ = [op for op in node.get("pre", []) + node.get("post", []) if isinstance(op, dict)
            and op.get("op") in ("conv", "fc")]
    if not ops_:
        raise ValueError(f"num_classes: readout node {node['name']!r} has no conv or fc op")
    ops_[-1]["filters" if ops_[-1]["op"] == "conv" else "units"] = num_classes


def graph_config(base: str, cells=None, depths=None, add_edges=(), remove_edges=(),
                 presentation="default", times=None, image_off=None, readout=None,
                 width: float = 1.0, num_classes=None) -> dict:
    """A released graph with overrides, as plain data for ``ConvRNN(**config)``.

    * ``cells``: {layer: cell config or None}; a cell config is ``{"kind": ..., **kwargs}``
      (``None`` removes the layer's cell).
    * ``depths``: {layer: channels}: every conv of that layer and its cell's depth.
    * ``add_edges``/``remove_edges``: [source, target] pairs (e.g. feedback).
    * ``presentation``: ``default`` (the model's own T and image_off), ``constant`` (image at
      every step; ``times`` defaults to the model's), ``neural`` (T=26, image off at t=10), or
      pass ``times``/``image_off`` for a custom one (``image_off=None`` with ``times`` = constant).
    * ``readout``: a readout config such as ``{"kind": "max_conf"}``.
    * ``width``: multiplies every channel count (convs and cell depths) except the readout's,
      after ``depths``; e.g. 0.25 for quick CPU runs. 1.0 keeps the released graph.
    * ``num_classes``: output units of the readout node (default: the released 1000).
    """
    cfg = released_graph(base)
    nodes = {n["name"]: n for n in cfg["nodes"]}
    for layer, cell in (cells or {}).items():
        if layer not in nodes:
            raise ValueError(f"cells: unknown layer {layer!r} (layers: {', '.join(nodes)})")
        if cell is not None:
            cell = dict(cell)
            cell.setdefault("name", tf1_scope(cell.get("kind")))
        nodes[layer]["memory"] = cell
    for layer, depth in (depths or {}).items():
        if layer not in nodes:
            raise ValueError(f"depths: unknown layer {layer!r} (layers: {', '.join(nodes)})")
        for op in nodes[layer].get("pre", []) + nodes[layer].get("post", []):
            if isinstance(op, dict) and op.get("op") == "conv":
                op["filters"] = int(depth)
        memory = nodes[layer].get("memory")
        for key in ("depth", "out_depth"):
            if memory and key in memory:
                memory[key] = int(depth)
    _scale_widths(cfg["nodes"], width)
    if num_classes is not None:
        _set_classes(cfg["nodes"][-1], int(num_classes))
    edges = [list(e) for e in cfg["edges"]]
    for e in remove_edges:
        if list(e) not in edges:
            raise ValueError(f"remove_edges: {e[0]} -> {e[1]} is not an edge of {base}")
        edges.remove(list(e))
    edges += [list(e) for e in add_edges]
    cfg["edges"] = edges
    if presentation not in PRESENTATIONS:
        raise ValueError(f"presentation {presentation!r}: expected one of {PRESENTATIONS}")
    if presentation == "neural":
        cfg["times"], cfg["image_off"] = 26, 10
    elif presentation == "constant":
        cfg["image_off"] = None
    if times is not None:
        cfg["times"] = times  # ConvRNN checks it is a whole number
        if presentation == "default":
            cfg["image_off"] = image_off
    if image_off is not None:
        if times is None and presentation == "default":
            raise ValueError("image_off: a custom image_off needs a custom times as well "
                             "(as in the original)")
        cfg["image_off"] = image_off
    if readout is not None:
        cfg["readout"] = dict(readout)
    return cfg
