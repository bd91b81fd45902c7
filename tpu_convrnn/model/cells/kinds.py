"""The cell kinds that graph configs name, as plain data (importing it loads no Keras).

``KINDS[kind]``: the module of ``tpu_convrnn.model.cells`` that holds the kind's layer, the
layer's class and the variable scope of the original's cell (its checkpoint names, which the
released graphs give the cell layers). ``tf1_scope(kind)``: that scope ("cell" for a kind the
original did not have).
"""
from __future__ import annotations

KINDS = {
    "time_decay": ("time_decay", "TimeDecayCell", "memory"),
    "lateral": ("lateral", "LateralCell", "LateralCell"),
    "simple_rnn": ("simple_rnn", "SimpleRNNCell", "ConvNormBasicCell"),
    "gru": ("gru", "GRUCell", "ConvGRUCell"),
    "lstm": ("lstm", "LSTMCell", "ConvLSTMCell"),
    "intersection_rnn": ("intersection_rnn", "IntersectionRNNCell", "ConvIntersectionRNNCell"),
    "ugrnn": ("ugrnn", "UGRNNCell", "ConvUGRNNCell"),
    "reciprocal_gated": ("reciprocal", "ReciprocalGatedCell", "ReciprocalGateCell"),
    "median_reciprocal_gated": ("reciprocal", "MedianReciprocalGatedCell", "ReciprocalGateCell"),
}


def tf1_scope(kind) -> str:
    return KINDS[kind][2] if kind in KINDS else "cell"
