"""Convolutional UGRNN (spec §4.6, ``ConvUGRNNCell``)."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model.cells.gated import FusedGateCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class UGRNNCell(FusedGateCell):
    """``[g~; c~] = W * [u; h] + b``; ``g = sigmoid(g~ + forget_bias)``, ``c = tanh(c~)``;
    ``h_t = g * h_{t-1} + (1 - g) * c``; output = state = ``h_t``."""

    n_gates = 2

    def step(self, drive, state, inputs, feedback):
        h = state[0]
        g, c = self.fused_gates(drive, h)
        g = ops.sigmoid(g + self.forget_bias)
        h_new = g * h + (1.0 - g) * self._act(c)
        return h_new, (h_new,)
