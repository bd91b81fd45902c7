"""A trial's gin file, and what the built model says about it before any training.

``write_trial_gin(path, space, bindings, split_gin)`` writes a self-contained gin file
(``python -m tpu_convrnn.main --gin_file=<it>`` trains the trial as it is);
``inspect_gin(path, filters_fit_maps)`` builds the model it describes and returns its parameter
count, FLOPs per image and canonical hashes, or raises ``Rejected`` with the reason (shapes, a
filter larger than its map) at no training cost.
"""
from __future__ import annotations

import hashlib
import json
import os

from tpu_convrnn import files, gin_bindings, lazy
from tpu_convrnn.gin_bindings import REPO_ROOT, parse_gin
from tpu_convrnn.model import cells
from tpu_convrnn.search.config import plain

flops = lazy("tpu_convrnn.tools.flops")  # (Keras: when a trial is inspected)

# Keys of a cell's config that say how it is computed or named, not what it computes.
_NOT_MATH = ("name", "dtype", "trainable")


class Rejected(ValueError):
    """The sampled point cannot be built or is forbidden by the space (reason in the text)."""


def gin_value(value) -> str:
    """A Python literal gin parses back to ``value`` (dicts, lists, str, numbers, bools, None)."""
    return repr(plain(value))


def include_path(path: str) -> str:
    """How a trial gin includes ``path``: repository files by their repo-relative path (found
    through the repository search path from anywhere), others by absolute path."""
    full = os.path.abspath(path if os.path.exists(path) else os.path.join(REPO_ROOT, path))
    rel = os.path.relpath(full, REPO_ROOT)
    return full if rel.startswith("..") else rel


def gin_text(space, bindings: dict, split_gin: str | None, header: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"include '{include_path(f)}'" for f in space.trial_gin_files]
    if split_gin:
        lines.append(f"include '{include_path(split_gin)}'")
    lines += list(space.trial_bindings)
    lines += [f"{k} = {gin_value(v)}" for k, v in bindings.items()]
    return "\n".join(lines) + "\n"


def write_trial_gin(path: str, space, bindings: dict, split_gin: str | None,
                    header: str = "") -> str:
    """Writes the gin file (atomically); returns its text."""
    text = gin_text(space, bindings, split_gin, header)
    files.write_atomic(path, text)
    return text


def parse_trial_gin(path: str, params=()):
    """(model_fn, TrainConfig, DataConfig) of a gin file, parsed afresh."""
    import gin
    gin.clear_config()
    parse_gin([path], list(params))
    return gin_bindings.configured_model, gin_bindings.configured_train(), \
        gin_bindings.configured_data()


def inspect_gin(path: str, filters_fit_maps: bool = True) -> dict:
    """``{"params", "flops_forward", "flops_train_step", "arch_hash"}`` of the model a trial
    gin describes; ``Rejected`` if it cannot be built."""
    import keras

    try:
        model_fn, _, _ = parse_trial_gin(path)
        model = model_fn()
    except ValueError as e:
        raise Rejected(str(e).splitlines()[0]) from e
    try:
        if filters_fit_maps:
            _check_filters(model)
        counts = flops.count_flops(model)
        info = {"params": int(model.count_params()),
                "flops_forward": int(counts["forward_to_loss"]),
                "flops_train_step": int(counts["train_step"]),
                "arch_hash": architecture_hash(model)}
    finally:
        del model
        keras.backend.clear_session()
    return info


def _check_filters(model):
    for name in model.node_names:
        cell = model.graph_nodes[name].cell
        if cell is None:
            continue
        size = max(cell.height, cell.width)
        for attr, value in sorted(vars(cell).items()):
            if not (attr.endswith("filter_size") or attr == "kernel_size"):
                continue
            if attr.startswith("feedback") and getattr(cell, "feedback_depth", None) is None:
                continue
            if isinstance(value, int) and value > size:
                raise Rejected(f"layer {name}: {attr} = {value} is larger than its "
                               f"{cell.height}x{cell.width} map (space.filters_fit_maps)")


def canonical_cell(cell) -> dict | None:
    """A cell's full config (defaults included) under its generic class: a preset such as
    ``MedianReciprocalGatedCell`` is a ``ReciprocalGatedCell`` with other defaults."""
    if cell is None:
        return None
    generic = next(c for c in type(cell).__mro__ if cells.ConvCell in c.__bases__)
    cfg = {k: v for k, v in cell.get_config().items() if k not in _NOT_MATH}
    return {"class": generic.__name__, **cfg}


def architecture_hash(model) -> str:
    """A hash of what defines the built model's math: every node's ops and cell (with all
    arguments, defaults included), the edges, the unrolling, the readout, the input size."""
    desc = {"nodes": [{"name": n, "pre": model.graph_nodes[n].pre_config,
                       "post": model.graph_nodes[n].post_config,
                       "cell": canonical_cell(model.graph_nodes[n].cell)}
                      for n in model.node_names],
            "edges": sorted(map(list, model.edges_config)), "times": model.times,
            "image_off": model.image_off, "readout": model.readout_config,
            "image_size": model.image_size}
    return digest(desc)


def digest(data) -> str:
    text = json.dumps(plain(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
