"""The recurrent cell library: one Keras layer per cell type, one call per time step.

See ``tpu_convrnn.cells.base`` for the calling contract. ``make_cell(kind, **kwargs)`` builds a
cell from its registry name, which is what graph configs (and gin files) refer to.
"""
from tpu_convrnn.cells.base import ConvCell
from tpu_convrnn.cells.gru import GRUCell
from tpu_convrnn.cells.intersection_rnn import IntersectionRNNCell
from tpu_convrnn.cells.lstm import LSTMCell
from tpu_convrnn.cells.reciprocal import (MEDIAN_CONFIG, MedianReciprocalGatedCell,
                                          ReciprocalGatedCell)
from tpu_convrnn.cells.simple_rnn import SimpleRNNCell
from tpu_convrnn.cells.time_decay import TimeDecayCell
from tpu_convrnn.cells.ugrnn import UGRNNCell

CELLS = {
    "time_decay": TimeDecayCell,
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
    return CELLS[kind](**kwargs)


__all__ = ["CELLS", "ConvCell", "GRUCell", "IntersectionRNNCell", "LSTMCell", "MEDIAN_CONFIG",
           "MedianReciprocalGatedCell", "ReciprocalGatedCell", "SimpleRNNCell", "TimeDecayCell",
           "UGRNNCell", "make_cell"]
