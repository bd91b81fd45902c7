"""The lateral connection of Spoerer, McClure & Kriegeskorte (2017): a layer's own previous
output, convolved, added to its bottom-up drive."""
from __future__ import annotations

import keras

from tpu_convrnn.model.cells.base import ConvCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class LateralCell(ConvCell):
    """``h_t = act(u_t + W_l * h_{t-1} + b_l)``; output = state = ``h_t``.

    ``u`` is the drive (the node's bottom-up conv, linear), so a node with this cell computes
    the BL layer of Spoerer et al. 2017 and, without it (the conv with the activation), their B
    layer: the bottom-up path is the same and the cell adds only the lateral conv ``l``
    (``kernel_size``, depth = the drive's, with bias). At t = 0 (zero state) it is the
    feedforward layer.
    """

    def __init__(self, kernel_size: int = 3, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self._act = self._check_activation(activation, "activation")

    def build_cell(self):
        d = self.drive_depth
        self.conv_l = self.make_conv("l", d, self.kernel_size, d, bias_decay=self.weight_decay)

    def state_depths(self, drive_depth):
        return {"h": drive_depth}

    def step(self, drive, state, inputs, feedback):
        h = self._act(drive + self.conv_l(state[0]))
        return h, (h,)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "activation": self.activation}
