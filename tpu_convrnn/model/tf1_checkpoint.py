"""Reading original TF1 ConvRNN checkpoints into Keras models (``load_tf1_checkpoint``).

The checkpoint's variables (``tnn_model/<layer>/...``, listed per model in the shared reference
tables) are mapped onto the Keras model's weights by name (``tf1_name``; a cell's scope is its
kind's, ``cells.kinds.tf1_scope``). Missing, unexpected or mis-shaped variables raise one error
that lists them all. Optimizer slots (``*/Momentum``) and ``global_step`` are ignored, as are the
original's constants (non-trainable ``memory_decay`` = 0 of non-cell layers, the decoders'
unused ``probs``/``alpha`` ``softmax_beta`` = 1, and the thresh decoder's fixed
beta/threshold), after checking that they hold the values the Keras model assumes. Reading
needs TensorFlow; the command line is ``tpu_convrnn.convert``.
"""
from __future__ import annotations

import re

import numpy as np

PREFIX = "tnn_model/"

# Keras sublayer path inside a cell -> TF1 name inside the cell scope, per cell kind.
_GENERIC_RGC = {"input_to_cell": "cell/input_to_cell", "cell_tau": "cell/tau",
                "cell_gate": "cell/gate", "out_tau": "out/tau", "out_gate": "out/gate",
                "residual_to_out_gate": "out/residual_to_out_gate",
                "cell_residual": "cell/cell_residual", "cell_to_out": "out/cell_to_out",
                "input_to_out": "out/input_to_out", "feedback": "out/feedback"}
_MEDIAN_FLAT = {"input_to_cell": "cell/input_to_cell_", "input_to_out": "out/input_to_out_",
                "feedback": "out/feedback_to_out_", "residual_add": "out/residual_add_"}
_MEDIAN_DS = {"cell_tau": "cell/tau", "cell_gate": "cell/out_to_cell", "out_tau": "out/tau",
              "out_gate": "out/gate"}
_LEAF = {"kernel": "weights", "bias": "bias", "depthwise_kernel": "depthwise_weights",
         "pointwise_kernel": "pointwise_weights"}


def _cell_name(kind, sub, leaf):
    """TF1 name (inside the cell scope) of the Keras weight ``<sub>/<leaf>`` of a cell."""
    if kind == "median_reciprocal_gated":
        if sub in _MEDIAN_FLAT:
            return _MEDIAN_FLAT[sub] + {"kernel": "weights", "bias": "bias"}[leaf]
        return f"{_MEDIAN_DS[sub]}/{_LEAF[leaf]}"
    if kind == "reciprocal_gated":
        return f"{_GENERIC_RGC[sub]}/{_LEAF[leaf]}"
    if sub == "kernel":  # the fused conv of LSTM / UGRNN / IntersectionRNN
        return _LEAF[leaf]
    if sub is None and re.fullmatch(r"w_[fio]_diag", leaf):
        return f"peepholes/{leaf}"
    if sub in ("i", "s", "gates", "candidates"):
        return f"{sub}/{_LEAF[leaf]}"
    return f"{sub}/{leaf}"  # layer norms: <scope>/gamma, <scope>/beta


def tf1_name(model, variable) -> str:
    """The original checkpoint's name for a weight of a ``ConvRNN`` built from the zoo."""
    path = variable.path.split("/", 1)[1] if variable.path.startswith(model.name + "/") \
        else variable.path
    parts = path.split("/")
    if parts[0] == "readout":
        return PREFIX + "normalize/softmax_beta"
    layer = parts[0]
    spec = next(n for n in model.nodes_config if n["name"] == layer)
    memory = spec.get("memory") or {}
    if len(parts) == 3 and parts[1] == memory.get("name"):
        if memory["kind"] == "time_decay":
            return f"{PREFIX}{layer}/memory_decay"
        scope = f"{PREFIX}{layer}/{parts[1]}/"
        return scope + _cell_name(memory["kind"], None, parts[2])
    if len(parts) == 4 and parts[1] == memory.get("name"):
        return f"{PREFIX}{layer}/{parts[1]}/" + _cell_name(memory["kind"], parts[2], parts[3])
    sub, leaf = parts[1], parts[2]
    if sub.startswith("pre_") and leaf == "kernel":
        # component_conv names its kernel weights_basenet; the readout's conv/fc use 'weights'.
        leaf_name = "weights" if layer == model.readout_name else "weights_basenet"
    elif sub.startswith("post_") and leaf == "kernel":
        convs = [o for o in spec.get("post", []) if isinstance(o, dict) and o.get("name") == sub]
        leaf_name = "residual_add_weights" if convs and convs[0]["op"] == "residual_add" \
            else "weights"
    else:
        leaf_name = leaf
    return f"{PREFIX}{layer}/{sub}/{leaf_name}"


def _is_ignored(name: str) -> bool:
    return name == "global_step" or name.endswith("/Momentum") or "/Momentum_" in name


def expected_constants(model) -> dict:
    """Checkpoint constants the Keras model does not hold as weights, with their values."""
    consts = {}
    for n in model.node_names:
        spec = next(s for s in model.nodes_config if s["name"] == n)
        if spec.get("memory") is None:  # cell layers have no leaky memory in the original
            consts[f"{PREFIX}{n}/memory_decay"] = 0.0
    kind = model.readout.kind
    if kind in ("max_conf", "thresh"):
        consts[PREFIX + "probs/softmax_beta"] = 1.0
        consts[PREFIX + "alpha/softmax_beta"] = 1.0
    if kind == "thresh":
        consts[PREFIX + "normalize/softmax_beta"] = model.readout.beta_value
        consts[PREFIX + "decoder_threshold"] = model.readout.threshold
    return consts


def load_tf1_checkpoint(model, prefix: str) -> dict:
    """Assigns a TF1 checkpoint's values to ``model``; returns {keras path: tf1 name}.

    Raises ValueError listing every missing, unexpected or mis-shaped variable.
    """
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # NotFoundError, DataLossError, ...
        raise ValueError(f"cannot read TF1 checkpoint {prefix!r}: {e}") from e
    shapes = reader.get_variable_to_shape_map()
    mapping = {v.path: tf1_name(model, v) for v in model.weights}
    consts = expected_constants(model)
    missing = [f"{t} (for {k})" for k, t in mapping.items() if t not in shapes]
    misshaped = [f"{t}: checkpoint {shapes[t]}, model {list(v.shape)}"
                 for v in model.weights for t in [mapping[v.path]]
                 if t in shapes and list(shapes[t]) != list(v.shape)]
    used = set(mapping.values())
    unexpected = sorted(n for n in shapes if n not in used and n not in consts
                        and not _is_ignored(n))
    wrong_consts = []
    for name, value in consts.items():
        if name in shapes and not np.allclose(_read(reader, name, prefix), value):
            wrong_consts.append(f"{name} = {_read(reader, name, prefix).tolist()} (this model "
                                f"assumes {value})")
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected),
                         ("mis-shaped", misshaped), ("unsupported constant", wrong_consts)):
        if items:
            problems.append(f"{len(items)} {title}:\n    " + "\n    ".join(items))
    if problems:
        raise ValueError(f"checkpoint {prefix!r} does not fit model {model.name!r}:\n  "
                         + "\n  ".join(problems))
    for v in model.weights:
        v.assign(_read(reader, mapping[v.path], prefix).astype(np.float32))
    return mapping


def _read(reader, name, prefix):
    try:
        return reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001  (DataLossError, IndexError: a truncated data file)
        raise ValueError(f"cannot read {name!r} from TF1 checkpoint {prefix!r} (truncated or "
                         f"damaged?): {str(e).splitlines()[0]}") from e
