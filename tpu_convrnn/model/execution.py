"""Execution settings: how a model is computed, as opposed to what it computes.

A model's constructor and saved config hold its math; a setting here changes only how that math
is carried out (and so speed and memory), never an output or a gradient beyond float round-off.
Settings are read when a model's ``call`` is traced (eagerly: at every call), like Keras' dtype
policies, so a ``tf.function`` or ``jax.jit`` keeps the settings it was traced under.

    from tpu_convrnn.model import execution
    with execution.settings(eliminate=False):   # the dense unroll, e.g. for a benchmark
        logits = model(images)
    execution.set_default(eliminate=False)      # for the rest of the process (gin: execution.*)

Settings:

* ``eliminate`` (default True): exact work elimination in the unroll
  (``tpu_convrnn.model.unroll_plan``): a node-step that is the same for every image runs once, at
  batch 1, and one that repeats an earlier node-step is not run again.
* ``depthwise`` (default ``"auto"``): how depthwise convolutions and their gradients are
  computed (``tpu_convrnn.model.depthwise``: native, taps, rows, shifts; auto picks per backend).
* ``fuse_convs`` (default False): a cell's convolutions of one tensor run as one
  (``tpu_convrnn.model.fused_convs``).
* ``remat`` (default False): each node-step is recomputed in the backward pass instead of
  keeping its intermediates (less memory, more compute; TensorFlow and JAX backends).

The settings are process-wide (not per thread): MirroredStrategy traces each replica's step in a
thread of its own, and every replica must see the settings of the caller.
"""
from __future__ import annotations

import contextlib
import dataclasses


DEPTHWISE_METHODS = ("auto", "native", "taps", "rows", "shifts")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The execution settings in effect (see the module docstring)."""
    eliminate: bool = True
    depthwise: str = "auto"
    fuse_convs: bool = False
    remat: bool = False


_default = Settings()
_stack: list[Settings] = []


def _checked(base: Settings, changes: dict) -> Settings:
    names = [f.name for f in dataclasses.fields(Settings)]
    for key, value in changes.items():
        if key not in names:
            raise ValueError(f"execution setting {key!r}: unknown (settings: "
                             f"{', '.join(names)})")
        if key == "depthwise":
            if value not in DEPTHWISE_METHODS:
                raise ValueError(f"depthwise = {value!r}: expected one of "
                                 f"{', '.join(DEPTHWISE_METHODS)} (an execution setting)")
        elif not isinstance(value, bool):
            raise ValueError(f"{key} = {value!r}: expected True or False (an execution "
                             "setting)")
    return dataclasses.replace(base, **changes)


def current() -> Settings:
    """The settings in effect: the innermost ``settings(...)`` block's, else the default."""
    return _stack[-1] if _stack else _default


@contextlib.contextmanager
def settings(**changes):
    """Changes some settings inside a ``with`` block (blocks nest)."""
    _stack.append(_checked(current(), changes))
    try:
        yield _stack[-1]
    finally:
        _stack.pop()


def set_default(**changes) -> Settings:
    """Changes the process' default settings; returns the new default."""
    global _default
    _default = _checked(_default, changes)
    return _default
