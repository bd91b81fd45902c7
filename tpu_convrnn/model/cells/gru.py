"""Convolutional GRU (spec §4.3, ``ConvGRUCell``)."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model.cells.gated import FusedGateCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class GRUCell(FusedGateCell):
    """Convolutional GRU as in the original:

    * ``[r~; z~] = W_g * [u; h] + b_g`` (scope ``gates``, gate bias initialised to
      ``gate_bias_init`` = 1.0);
    * ``r = sigmoid(r~ + forget_bias)`` -- the forget bias goes to the **reset** gate --,
      ``z = sigmoid(z~)``;
    * ``h~ = tanh(W_c * [u; r * h] + b_c)`` (scope ``candidates``);
    * ``h_t = z * h_{t-1} + (1 - z) * h~``; output = state = ``h_t``.
    """

    n_gates = 2
    conv_name = "gates"

    def __init__(self, depth: int, gate_bias_init: float = 1.0, **kwargs):
        super().__init__(depth, **kwargs)
        self.gate_bias_init = float(gate_bias_init)

    def build_cell(self):
        k, d, i = self.kernel_size, self.depth, self.drive_depth
        self.fused = self.make_conv(
            "gates", 2 * d, k, i + d, bias_decay=self.weight_decay,
            bias_initializer=keras.initializers.Constant(self.gate_bias_init))
        self.candidates = self.make_conv("candidates", d, k, i + d, bias_decay=self.weight_decay)

    def step(self, drive, state, inputs, feedback):
        h = state[0]
        r, z = self.fused_gates(drive, h)
        r = ops.sigmoid(r + self.forget_bias)
        z = ops.sigmoid(z)
        cand = self._act(self.candidates(ops.concatenate([drive, r * h], axis=-1)))
        h_new = z * h + (1.0 - z) * cand
        return h_new, (h_new,)

    def get_config(self):
        return {**super().get_config(), "gate_bias_init": self.gate_bias_init}
