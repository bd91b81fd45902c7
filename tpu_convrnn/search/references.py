"""Hand-designed points enqueued before the search samples: the released cells as parameters.

* ``median_rgc``: the released rgc_intermediate cell (``cells.MEDIAN_CONFIG``, spec §4.8) with
  its five feedback edges (``zoo.RGC_FEEDBACK``) entering at "out" through 1x1 full convs;
* ``shallow_rgc_cell``: the rgc_shallow cell (spec §4.7: 3x3 full convs, sigmoid gates,
  offsets 1 / multipliers -1, input -> cell, residual -> out gate, no bias), no feedback.

A reference gives a value to every searched parameter it defines; the others (e.g. a cell depth
that the shallow cell does not fix) are left to the sampler, and training knobs take the
trial recipe's values where they lie in the space.
"""
from __future__ import annotations

import inspect

from tpu_convrnn.model import cells, zoo
from tpu_convrnn.search import sample
from tpu_convrnn.search.config import SearchSpace


def _defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _median():
    cell = dict(cells.MEDIAN_CONFIG)
    cell["init_scale"] = cell.pop("kernel_initializer")["config"]["scale"]
    cell.pop("cell_tau_filter_size", None)
    return cell, [list(e) for e in zoo.RGC_FEEDBACK]


def _shallow():
    cell = {**_defaults(cells.ReciprocalGatedCell), "input_to_cell": True,  # (loads Keras)
            "residual_to_out_gate": True, "weight_decay": zoo.WD, "use_bias": False}
    for k in ("out_depth", "cell_depth", "cell_tau_filter_size"):
        cell.pop(k)
    return cell, []


BUILT_IN = {"median_rgc": _median, "shallow_rgc_cell": _shallow}


def reference_params(space: SearchSpace, recipe=None) -> dict:
    """``{reference name: params}`` for the space's references; ValueError naming the
    reference and parameter when a value lies outside the space."""
    refs = space.references
    items = refs.items() if isinstance(refs, dict) else [(r, r) for r in refs]
    out = {}
    for name, ref in items:
        if isinstance(ref, str):
            if ref not in BUILT_IN:
                raise ValueError(f"space.references: unknown reference {ref!r} (built in: "
                                 f"{', '.join(BUILT_IN)}; or give {{name: {{param: value}}}})")
            params = _built_in_params(space, *BUILT_IN[ref]())
        elif isinstance(ref, dict):
            params = dict(ref)
        else:
            raise ValueError(f"space.references[{name!r}]: expected a built-in name or a "
                             f"{{param: value}} dict, got {ref!r}")
        for p, field, knob in sample.parameters(space, "train"):
            value = getattr(recipe, field, None) if recipe is not None else None
            if p not in params and value is not None and knob.contains(value):
                params[p] = value
        _check_in_space(space, name, params)
        out[name] = params
    return out


def _built_in_params(space, cell, edges) -> dict:
    params = {p: cell[field] for p, field, _ in sample.parameters(space, "cell") if field in cell}
    params.update({p: [src, dst] in edges for (p, _, _), (src, dst)
                   in zip(sample.parameters(space, "edge"), space.candidate_edges())})
    receivers = sample.feedback_receivers(space, params)
    params.update({p: cell[field] for p, field, _ in sample.parameters(space, "feedback",
                                                                         receivers)
                   if field in cell})
    return params


def _check_in_space(space, name, params):
    names = {p: knob for group in sample.GROUPS for p, _, knob in sample.parameters(space, group)}
    for p, value in params.items():
        if p not in names:
            raise ValueError(f"space.references: reference {name!r}: {p!r} is not a parameter "
                             f"of this space")
        if not names[p].contains(value):
            raise ValueError(f"space.references: reference {name!r}: {p} = {value!r} is not in "
                             f"the space ({names[p].describe()}); widen the knob or drop the "
                             "reference")
