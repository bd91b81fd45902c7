"""The recurrent cell library: one Keras layer per cell type, one call per time step.

See ``tpu_convrnn.model.cells.base`` for the calling contract. ``make_cell(kind, **kwargs)`` builds a
cell from its registry name, which is what graph configs (and gin files) refer to. The layers
(and ``CELLS``, kind -> class) are imported when first named (PEP 562): the plain data
(``KINDS``, ``LSTM_SHALLOW``, ``MEDIAN_CONFIG``) needs no Keras, so the released graphs and the
search's sampler can be read without loading it.
"""
import difflib
import importlib
import inspect

from tpu_convrnn.model.cells.kinds import KINDS, tf1_scope
from tpu_convrnn.model.cells.searched import LSTM_SHALLOW, MEDIAN_CONFIG

_CLASSES = {cls: module for module, cls, _ in KINDS.values()}
_CLASSES.update(ConvCell="base")


def __getattr__(name):
    if name == "CELLS":
        return {kind: __getattr__(cls) for kind, (_, cls, _) in KINDS.items()}
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_cell(kind: str, **kwargs):
    """Builds the cell registered as ``kind`` (see ``KINDS``) with ``kwargs``."""
    if kind not in KINDS:
        raise ValueError(f"unknown cell kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    cls = __getattr__(KINDS[kind][1])
    known = cell_arguments(cls)
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise ValueError(f"{kind} cell: unknown argument {key!r}" +
                             (f" (did you mean {close[0]!r}?)" if close else
                              f" (arguments: {', '.join(sorted(known))})"))
    return cls(**kwargs)


def cell_arguments(cls) -> set:
    """The keyword arguments ``cls`` takes: its own, its bases' and Keras layers' own."""
    names = {"name", "dtype", "trainable"}
    for klass in cls.__mro__:
        if klass.__module__.startswith("keras"):
            break
        names |= {k for k, p in inspect.signature(klass.__init__).parameters.items()
                  if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


__all__ = ["CELLS", "KINDS", "LSTM_SHALLOW", "MEDIAN_CONFIG", "cell_arguments", "make_cell",
           "tf1_scope", *_CLASSES]
