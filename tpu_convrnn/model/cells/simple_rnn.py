"""Convolutional SimpleRNN with optional H,W,C layer norm (spec §4.2, ``ConvNormBasicCell``)."""
from __future__ import annotations

import keras
from tpu_convrnn.model import tf1_ops
from tpu_convrnn.model.cells.base import ConvCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class SimpleRNNCell(ConvCell):
    """``h_t = act(LN(W_i * u_t + b_i + W_s * h_{t-1} + b_s))``; output = state = ``h_t``.

    Two separate SAME convs with bias, ``i`` (I -> D) and ``s`` (D -> D). ``layer_norm`` is the
    contrib layer norm over (H, W, C) with per-channel gain and shift (``ops.LayerNormHWC``),
    with variance epsilon ``layer_norm_epsilon`` (the original's 1e-12).
    Weight decay applies to kernels and biases, as in the original.
    """

    def __init__(self, depth: int, kernel_size: int = 3, layer_norm: bool = False,
                 activation: str = "elu", layer_norm_epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.kernel_size = int(kernel_size)
        self.layer_norm = bool(layer_norm)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.activation = activation
        self._act = self._check_activation(activation, "activation")

    def build_cell(self):
        k, d = self.kernel_size, self.depth
        self.conv_i = self.make_conv("i", d, k, self.drive_depth, bias_decay=self.weight_decay)
        self.conv_s = self.make_conv("s", d, k, d, bias_decay=self.weight_decay)
        self.norm = None
        if self.layer_norm:
            self.norm = tf1_ops.LayerNormHWC(self.layer_norm_epsilon, name="layer_norm",
                                            dtype=self.dtype_policy)
            self.norm.build((None, self.height, self.width, d))

    def state_depths(self, drive_depth):
        return {"h": self.depth}

    def step(self, drive, state, inputs, feedback):
        a = self.conv_i(drive) + self.conv_s(state[0])
        if self.norm is not None:
            a = self.norm(a)
        h = self._act(a)
        return h, (h,)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "kernel_size": self.kernel_size,
                "layer_norm": self.layer_norm, "layer_norm_epsilon": self.layer_norm_epsilon,
                "activation": self.activation}
