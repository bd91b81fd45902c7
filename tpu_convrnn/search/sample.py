"""From a search space to trial parameters, and from parameters to gin bindings.

Parameter names (one name, one distribution, as Optuna requires):

* ``cell.<knob>`` (tied cells) or ``<layer>.<knob>`` (one cell per layer);
* ``edge.<source>-><target>``: whether that long-range edge exists (False/True);
* ``fb.<layer>.<knob>``: feedback settings of a layer that receives at least one edge
  (conditional: suggested only then);
* ``train.<field>``: training knobs.

``suggest(trial, space)`` asks any object with Optuna's ``suggest_int`` / ``suggest_float`` /
``suggest_categorical`` for every parameter and returns the params; ``bindings(space, params)``
turns params into the ``model.*`` / ``train.*`` values a trial's gin file binds.
"""
from __future__ import annotations

from tpu_convrnn.model import zoo
from tpu_convrnn.model.initializers import variance_scaling
from tpu_convrnn.search.config import SearchSpace
from tpu_convrnn.search.knobs import Knob


def edge_param(src: str, dst: str) -> str:
    return f"edge.{src}->{dst}"


def _suggest(trial, name, knob):
    if knob.kind == "int":
        return trial.suggest_int(name, int(knob.low), int(knob.high), log=knob.log)
    if knob.kind == "float":
        return trial.suggest_float(name, float(knob.low), float(knob.high), log=knob.log)
    return trial.suggest_categorical(name, list(knob.choices))


def cell_param(space: SearchSpace, layer: str | None, knob: str) -> str:
    return f"cell.{knob}" if space.tied else f"{layer}.{knob}"


def feedback_param(layer: str, knob: str) -> str:
    return f"fb.{layer}.{knob}"


def train_param(field: str) -> str:
    return f"train.{field}"


def parameters(space: SearchSpace, group: str, receivers=None) -> list:
    """The parameters of one ``group`` of ``space``, in sampling order, as ``(name, field,
    knob)``: ``field`` is the cell argument, the feedback argument or the ``TrainConfig`` field
    it sets (None for edges). Groups: ``cell``, ``edge``, ``feedback`` (of ``receivers``:
    default every cell layer) and ``train``. The one table of the module docstring's names."""
    knobs = space.knobs()
    if group == "cell":
        return [(cell_param(space, layer, name), name, knob)
                for layer in ([None] if space.tied else space.cell_layers)
                for name, knob in knobs["cell"].items()]
    if group == "edge":
        return [(edge_param(src, dst), None, ON_OFF) for src, dst in space.candidate_edges()]
    if group == "feedback":
        layers = space.cell_layers if receivers is None else receivers
        return [(feedback_param(layer, name), name, knob) for layer in space.cell_layers
                if layer in layers for name, knob in knobs["feedback"].items()]
    if group == "train":
        return [(train_param(name), name, knob) for name, knob in knobs["train"].items()]
    raise ValueError(f"parameter group {group!r}: expected one of {', '.join(GROUPS)}")


GROUPS = ("cell", "edge", "feedback", "train")


def suggest(trial, space: SearchSpace) -> dict:
    """Suggests every parameter of ``space`` on ``trial``; returns ``{name: value}``."""
    params = {}
    for group in GROUPS:
        receivers = feedback_receivers(space, params) if group == "feedback" else None
        for p, _, knob in parameters(space, group, receivers):
            params[p] = _suggest(trial, p, knob)
    return params


ON_OFF = Knob("bool", choices=(False, True))
# TrainConfig takes at most one of these; a trial that sets one unsets the other, so that a space
# searching clip_value can include a recipe such as gin/local.gin that clips by norm.
CLIPPING = (("clip_value", "clip_norm"), ("clip_norm", "clip_value"))


def bindings(space: SearchSpace, params: dict) -> dict:
    """``{binding: value}`` for a trial gin file: ``model.base``, ``model.cells``,
    ``model.add_edges``, ``model.remove_edges`` and ``train.*``. Parameters the space does not
    search take the space's fixed values (or the cell's defaults)."""
    fixed_cell, fixed_fb, fixed_train = (space.fixed(s) for s in ("cell", "feedback", "train"))
    knobs = space.knobs()
    base_edges = [list(e) for e in zoo.released_graph(space.base)["edges"]]
    on = {(s, d) for s, d in space.candidate_edges() if params.get(edge_param(s, d), False)}
    receivers = feedback_receivers(space, params)
    cells = {}
    for layer in space.cell_layers:
        cfg = {"kind": space.cell_kind, **fixed_cell}
        for name in knobs["cell"]:
            cfg[name] = params[cell_param(space, layer, name)]
        if layer in receivers:
            cfg.update(fixed_fb)
            for name in knobs["feedback"]:
                cfg[name] = params[feedback_param(layer, name)]
        cells[layer] = _cell_arguments(space, cfg)
    add = [[s, d] for s, d in space.candidate_edges() if (s, d) in on and [s, d] not in base_edges]
    remove = [[s, d] for s, d in space.candidate_edges()
              if (s, d) not in on and [s, d] in base_edges]
    out = {"model.base": space.base, "model.cells": cells, "model.add_edges": add,
           "model.remove_edges": remove}
    train = dict(fixed_train)
    train.update({name: params[train_param(name)] for name in knobs["train"]})
    for mode, other in CLIPPING:  # one clipping mode: an included gin's other one yields
        if train.get(mode) is not None and other not in train:
            train[other] = None
    out.update({train_param(k): v for k, v in train.items()})
    return out


def feedback_receivers(space: SearchSpace, params: dict) -> set:
    """Cell layers that receive a long-range edge: a candidate switched on, or a feedback edge
    of the base graph that the space does not search."""
    graph = zoo.released_graph(space.base)
    index = {n["name"]: i for i, n in enumerate(graph["nodes"])}
    candidates = space.candidate_edges()
    out = {d for s, d in candidates if params.get(edge_param(s, d), False)}
    out |= {d for s, d in graph["edges"] if index[s] > index[d] and d in space.cell_layers
            and [s, d] not in candidates}
    return out


def _cell_arguments(space: SearchSpace, cfg: dict) -> dict:
    """Cell config from knob values: ``init_scale`` -> kernel initializer, offsets -> tied
    multipliers."""
    cfg = dict(cfg)
    if "init_scale" in cfg:
        cfg["kernel_initializer"] = variance_scaling(float(cfg.pop("init_scale")))
    if space.tie_multipliers:
        for gate in ("tau", "gate"):
            if f"{gate}_offset" in cfg:
                cfg[f"{gate}_multiplier"] = -float(cfg[f"{gate}_offset"])
    return cfg
