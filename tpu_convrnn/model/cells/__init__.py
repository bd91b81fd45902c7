"""The recurrent cell library: one Keras layer per cell type, one call per time step.

See ``tpu_convrnn.model.cells.base`` for the calling contract. ``make_cell(kind, **kwargs)`` builds a
cell from its registry name, which is what graph configs (and gin files) refer to.
"""
import difflib
import inspect

from tpu_convrnn.model.cells.base import ConvCell
from tpu_convrnn.model.cells.gru import GRUCell
from tpu_convrnn.model.cells.intersection_rnn import IntersectionRNNCell
from tpu_convrnn.model.cells.lateral import LateralCell
from tpu_convrnn.model.cells.lstm import LSTMCell
from tpu_convrnn.model.cells.reciprocal import MedianReciprocalGatedCell, ReciprocalGatedCell
from tpu_convrnn.model.cells.searched import LSTM_SHALLOW, MEDIAN_CONFIG
from tpu_convrnn.model.cells.simple_rnn import SimpleRNNCell
from tpu_convrnn.model.cells.time_decay import TimeDecayCell
from tpu_convrnn.model.cells.ugrnn import UGRNNCell

CELLS = {
    "time_decay": TimeDecayCell,
    "lateral": LateralCell,
    "simple_rnn": SimpleRNNCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
    "intersection_rnn": IntersectionRNNCell,
    "ugrnn": UGRNNCell,
    "reciprocal_gated": ReciprocalGatedCell,
    "median_reciprocal_gated": MedianReciprocalGatedCell,
}


def make_cell(kind: str, **kwargs) -> ConvCell:
    """Builds the cell registered as ``kind`` (see ``CELLS``) with ``kwargs``."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell kind {kind!r}; expected one of {', '.join(sorted(CELLS))}")
    known = cell_arguments(CELLS[kind])
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise ValueError(f"{kind} cell: unknown argument {key!r}" +
                             (f" (did you mean {close[0]!r}?)" if close else
                              f" (arguments: {', '.join(sorted(known))})"))
    return CELLS[kind](**kwargs)


def cell_arguments(cls) -> set:
    """The keyword arguments ``cls`` takes: its own, its bases' and Keras layers' own."""
    names = {"name", "dtype", "trainable"}
    for klass in cls.__mro__:
        if klass.__module__.startswith("keras"):
            break
        names |= {k for k, p in inspect.signature(klass.__init__).parameters.items()
                  if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


__all__ = ["CELLS", "ConvCell", "GRUCell", "IntersectionRNNCell", "LateralCell", "LSTMCell",
           "LSTM_SHALLOW", "MEDIAN_CONFIG",
           "MedianReciprocalGatedCell", "ReciprocalGatedCell", "SimpleRNNCell", "TimeDecayCell",
           "UGRNNCell", "cell_arguments", "make_cell"]
