"""Convolutional LSTM with optional per-gate layer norm and per-position peepholes (spec §4.4)."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model import tf1_ops
from tpu_convrnn.model.cells.gated import FusedGateCell

_GATE_NORMS = ("input", "transform", "forget", "output")


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class LSTMCell(FusedGateCell):
    """Convolutional LSTM (``ConvLSTMCell``). State ``(c, h)``; output ``h``.

    ``[i; j; f; o] = W * [u; h_{t-1}] + b``; with ``layer_norm`` each of i, j, f, o is normalised
    by its own H,W,C layer norm (scopes input/transform/forget/output), and so is ``c_t``
    (scope state). With ``peepholes`` the weights ``w_f, w_i, w_o`` have shape [H, W, D] (one
    weight per position and channel)::

        c_t = c_{t-1} * sig(f + f_b + w_f * c_{t-1}) + sig(i + w_i * c_{t-1}) * tanh(j)
        h_t = tanh(c_t) * sig(o + w_o * c_{t-1})        # the output peephole reads the OLD c

    Without peepholes the ``w * c`` terms are absent. ``layer_norm_epsilon`` is the norms'
    variance epsilon (the original's 1e-12; see ``ops.LayerNormHWC``).
    """

    state_names = ("c", "h")
    n_gates = 4

    def __init__(self, depth: int, layer_norm: bool = False, peepholes: bool = False,
                 peephole_initializer="glorot_uniform", layer_norm_epsilon: float = 1e-12,
                 **kwargs):
        super().__init__(depth, **kwargs)
        self.layer_norm = bool(layer_norm)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.peepholes = bool(peepholes)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)

    def build_cell(self):
        super().build_cell()
        shape = (None, self.height, self.width, self.depth)
        self.norms = {}
        if self.layer_norm:
            for name in _GATE_NORMS + ("state",):
                self.norms[name] = tf1_ops.LayerNormHWC(self.layer_norm_epsilon, name=name,
                                                       dtype=self.dtype_policy)
                self.norms[name].build(shape)
        self.peep = {}
        if self.peepholes:
            for g in ("f", "i", "o"):
                self.peep[g] = self.add_weight(
                    name=f"w_{g}_diag", shape=(self.height, self.width, self.depth),
                    initializer=self.peephole_initializer)

    def state_depths(self, drive_depth):
        return {"c": self.depth, "h": self.depth}

    def step(self, drive, state, inputs, feedback):
        c, h = state
        gates = self.fused_gates(drive, h)
        if self.norms:
            gates = [self.norms[n](g) for n, g in zip(_GATE_NORMS, gates)]
        i, j, f, o = gates
        f = f + self.forget_bias
        if self.peep:  # (float32 weights, in the compute dtype like the convs' kernels)
            w = {g: ops.cast(v, self.compute_dtype) for g, v in self.peep.items()}
            f = f + w["f"] * c
            i = i + w["i"] * c
            o = o + w["o"] * c
        c_new = c * ops.sigmoid(f) + ops.sigmoid(i) * self._act(j)
        if self.norms:
            c_new = self.norms["state"](c_new)
        h_new = self._act(c_new) * ops.sigmoid(o)
        return h_new, (c_new, h_new)

    def get_config(self):
        return {**super().get_config(), "layer_norm": self.layer_norm,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "peepholes": self.peepholes,
                "peephole_initializer": keras.initializers.serialize(self.peephole_initializer)}
