"""Shared pieces of the gated cells whose gates come from one conv over ``[u; h]``."""
from __future__ import annotations

from keras import ops

from tpu_convrnn.model.cells.base import ConvCell


class FusedGateCell(ConvCell):
    """A cell whose ``n_gates * D`` pre-activations come from one SAME conv over ``[u; h_{t-1}]``.

    The fused kernel's input channels are ordered [u-part; h-part] and its outputs are the gates in
    the order of the subclass's equations. ``forget_bias`` is added inside the gate sigmoids the
    subclass names; kernel and bias both carry the weight decay.
    """

    n_gates = 1
    conv_name = "kernel"

    def __init__(self, depth: int, kernel_size: int = 3, forget_bias: float = 1.0,
                 activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.kernel_size = int(kernel_size)
        self.forget_bias = float(forget_bias)
        self.activation = activation
        self._act = self._check_activation(activation, "activation")

    def build_cell(self):
        self.fused = self.make_conv(self.conv_name, self.n_gates * self.depth, self.kernel_size,
                                    self.drive_depth + self.depth, bias_decay=self.weight_decay)

    def state_depths(self, drive_depth):
        return {"h": self.depth}

    def fused_gates(self, drive, h):
        """The ``n_gates`` pre-activations [N, H, W, D] of ``W * [u; h] + b``."""
        z = self.fused(ops.concatenate([drive, h], axis=-1))
        return ops.split(z, self.n_gates, axis=-1)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "kernel_size": self.kernel_size,
                "forget_bias": self.forget_bias, "activation": self.activation}
