"""Convolutional IntersectionRNN (spec §4.5, ``ConvIntersectionRNNCell``)."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model.cells.gated import FusedGateCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class IntersectionRNNCell(FusedGateCell):
    """``[g~_h; h~; g~_y; y~] = W * [u; h] + b``; with ``g_h = sigmoid(g~_h + f_b)``,
    ``g_y = sigmoid(g~_y + f_b)``:

    * state ``h_t = g_h * h_{t-1} + (1 - g_h) * tanh(h~)``;
    * output ``y_t = g_y * u + (1 - g_y) * relu(y~)`` (the output is **not** the state).

    The drive ``u`` must have the state's depth, because it is mixed into the output directly.
    """

    n_gates = 4

    def build_cell(self):
        if self.drive_depth != self.depth:
            raise self._error("drive channels", f"{self.depth} (the state depth: the output mixes "
                              "in the drive directly)", self.drive_depth)
        super().build_cell()

    def step(self, drive, state, inputs, feedback):
        h = state[0]
        gh, hc, gy, yc = self.fused_gates(drive, h)
        gh = ops.sigmoid(gh + self.forget_bias)
        gy = ops.sigmoid(gy + self.forget_bias)
        h_new = gh * h + (1.0 - gh) * self._act(hc)
        y = gy * drive + (1.0 - gy) * ops.relu(yc)
        return y, (h_new,)
