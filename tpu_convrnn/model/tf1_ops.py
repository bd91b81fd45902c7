"""Ops shared by the cells and the graph, where Keras differs from the original TF1 code.

Everything here is written with ``keras.ops`` (plus NumPy for static, trace-time constants), so it
runs unchanged under Keras' TensorFlow and JAX backends.

* ``resize_bilinear_aligned``: bilinear resize with ``align_corners=True`` (TF1
  ``resize_bilinear``), which neither Keras 3 nor ``tf.image.resize`` offers. Output pixel ``i``
  reads source coordinate ``i * (H_in - 1) / (H_out - 1)``.
* ``LayerNormHWC``: the ``tf.contrib.layers.layer_norm`` of the original cells: statistics per
  example over (H, W, C) jointly, per-channel gain and shift, epsilon 1e-12.
* Padding: every conv and pool uses TF ``SAME`` padding, which for even kernels pads only at the
  bottom/right (``pad_before = floor(total / 2)``). Keras ``padding="same"`` does exactly this on
  the TensorFlow and JAX backends; ``same_padding`` states the rule for code that pads by hand.
* ``tf1_l2``: TF1 ``l2_regularizer(s)`` adds ``s * sum(w**2) / 2``; Keras ``L2(l)`` adds
  ``l * sum(w**2)``. The original's weight decay ``s`` is therefore ``L2(s / 2)`` here.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

# Activation names accepted by cells and graph nodes.
_ACTIVATIONS = {
    "identity": lambda x: x,
    "linear": lambda x: x,
    "elu": ops.elu,
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
}
ACTIVATIONS = tuple(sorted(_ACTIVATIONS))


def get_activation(name, where: str = "layer"):
    """Returns the activation function called ``name`` (None means identity).

    Raises ValueError naming ``where`` (e.g. the layer and argument) for an unknown name.
    """
    if name is None:
        return _ACTIVATIONS["identity"]
    if not isinstance(name, str) or name.lower() not in _ACTIVATIONS:
        raise ValueError(
            f"{where}: unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return _ACTIVATIONS[name.lower()]


def same_padding(size: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """(pad_before, pad_after) of TF 'SAME' padding along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf1_l2(weight_decay):
    """Keras regularizer equal to TF1 ``l2_regularizer(weight_decay)`` (None/0 -> None)."""
    if not weight_decay:
        return None
    return keras.regularizers.L2(float(weight_decay) / 2.0)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix of align_corners bilinear weights along one axis."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    for i in range(n_out):
        src = i * scale
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m.astype(np.float32)


def resize_bilinear_aligned(x, size):
    """Resizes NHWC ``x`` to ``size`` = (H, W) bilinearly with align_corners=True.

    Sizes must be static. Equal sizes return ``x`` itself (the original's resize is then an
    identity too). The resize is two small matrix products with constant interpolation matrices,
    which XLA maps onto the matrix units.
    """
    h_in, w_in = int(x.shape[1]), int(x.shape[2])
    h_out, w_out = int(size[0]), int(size[1])
    if (h_in, w_in) == (h_out, w_out):
        return x
    ry = ops.convert_to_tensor(_interp_matrix(h_in, h_out), dtype=x.dtype)
    rx = ops.convert_to_tensor(_interp_matrix(w_in, w_out), dtype=x.dtype)
    y = ops.einsum("oh,nhwc->nowc", ry, x)
    return ops.einsum("pw,nowc->nopc", rx, y)


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class LayerNormHWC(keras.layers.Layer):
    """Layer norm as ``tf.contrib.layers.layer_norm`` on NHWC tensors.

    Mean and variance per example over (H, W, C) jointly; gain ``gamma`` and shift ``beta`` per
    channel ([C]); ``(x - mean) / sqrt(var + epsilon) * gamma + beta``. Statistics are computed in
    float32 even under a bfloat16 compute policy.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.name}: expected a rank-4 NHWC input, got shape {tuple(input_shape)}")
        c = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros")

    def call(self, x):
        x32 = ops.cast(x, "float32")
        mean, var = ops.moments(x32, axes=[1, 2, 3], keepdims=True)
        y = (x32 - mean) * ops.rsqrt(var + self.epsilon)
        y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
