"""The ops of a graph node's pre- and post-memory stacks, each one Keras layer.

``op_layer(op, where, dtype)`` turns one plain-data op (see ``tpu_convrnn.model.node``) into the layer
that computes it: ``Conv2D`` / ``Dense`` (with the op's activation), ``MaxPooling2D``,
``GlobalAveragePooling2D``, ``Activation`` for the pointwise ops, and ``ResidualAdd``. Shapes come
from the layers themselves (``output_shape``, Keras' ``compute_output_shape``, which answers before
a layer is built); errors name the node and the op.
"""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model import tf1_ops
from tpu_convrnn.model.initializers import VARIANCE_SCALING

POINTWISE = ("elu", "relu", "sigmoid", "tanh", "identity")
KINDS = ("conv", "fc", "maxpool", "gap", "residual_add") + POINTWISE


def normalize_op(op, where):
    """An op as a dict with key ``op`` (a bare name ``"elu"`` becomes ``{"op": "elu"}``)."""
    if isinstance(op, str):
        op = {"op": op}
    if not isinstance(op, dict) or "op" not in op:
        raise ValueError(f"{where}: expected an op name or a dict with key 'op', got {op!r}")
    if op["op"] not in KINDS:
        raise ValueError(f"{where}: unknown op {op['op']!r}; expected one of "
                         + ", ".join(KINDS))
    return dict(op)


def op_layer(op: dict, where: str, dtype=None) -> keras.layers.Layer:
    """The Keras layer of one normalised op (not built)."""
    kind, name = op["op"], op.get("name")
    if kind in ("conv", "fc"):
        wd = op.get("weight_decay", 0.0)
        act = tf1_ops.get_activation(op.get("activation"), where)  # (checks the name)
        common = dict(kernel_initializer=op.get("kernel_initializer", VARIANCE_SCALING),
                      bias_initializer=op.get("bias_initializer", "zeros"),
                      kernel_regularizer=tf1_ops.tf1_l2(wd), bias_regularizer=tf1_ops.tf1_l2(wd),
                      activation=None if op.get("activation") in (None, "identity", "linear")
                      else act,
                      name=name, dtype=dtype)
        if kind == "conv":
            return keras.layers.Conv2D(op["filters"], op["kernel_size"],
                                       strides=op.get("strides", 1),
                                       padding=op.get("padding", "same"),
                                       use_bias=op.get("use_bias", True), **common)
        return keras.layers.Dense(op["units"], **common)
    if kind == "maxpool":
        return keras.layers.MaxPooling2D(op.get("pool_size", 2), op.get("strides", 2),
                                         padding="same", name=name, dtype=dtype)
    if kind == "gap":
        return keras.layers.GlobalAveragePooling2D(name=name, dtype=dtype)
    if kind == "residual_add":
        if not where.endswith("post"):
            raise ValueError(f"{where}: residual_add is a post-memory op")
        return ResidualAdd(name=name or "residual", dtype=dtype)
    return keras.layers.Activation(tf1_ops.get_activation(kind), name=name, dtype=dtype)


def output_shape(layer, shape, where: str) -> tuple:
    """The layer's output shape for an input of ``shape``, checked for what the graph allows:
    conv and pooling on [N, H, W, C], fc on [N, C]; a 'valid' conv larger than its input is an
    error saying the image is too small."""
    shape = tuple(shape)
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D,
                          keras.layers.GlobalAveragePooling2D)) and len(shape) != 4:
        raise ValueError(f"{where}: {type(layer).__name__} needs a [N, H, W, C] input, got "
                         f"shape {shape}")
    if isinstance(layer, keras.layers.Dense) and len(shape) != 2:
        raise ValueError(f"{where}: fc needs a [N, C] input (add 'gap' first), got shape "
                         f"{shape}")
    try:
        out = tuple(layer.compute_output_shape(shape))
    except ValueError as e:
        out, error = None, e
    if out is None or any(d is not None and d < 1 for d in out[1:]):
        k = getattr(layer, "kernel_size", None)
        raise ValueError(f"{where}: a {k[0]}x{k[1]} 'valid' conv needs an input of at least "
                         f"that size, got {shape[1]}x{shape[2]} (the image size is too small "
                         "for this graph)" if k else f"{where}: {error}")
    return out


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class ResidualAdd(keras.layers.Layer):
    """``t + R(x)``: the node's feedforward input ``x`` added to ``t``, through a 1x1 projection
    without bias when the depths differ (Glorot init, no weight decay; weight ``kernel``), and
    resized bilinearly (aligned corners) when the sizes differ."""

    def build(self, t_shape, x_shape=None):
        self.kernel, self.x_shape = None, x_shape
        if x_shape is not None and int(t_shape[-1]) != int(x_shape[-1]):
            self.kernel = self.add_weight(name="kernel", shape=(1, 1, int(x_shape[-1]),
                                                                int(t_shape[-1])),
                                          initializer="glorot_uniform")

    def call(self, t, x):
        r = x if self.kernel is None else ops.conv(x, self.kernel, padding="same")
        return t + tf1_ops.resize_bilinear_aligned(r, (int(t.shape[1]), int(t.shape[2])))

    def compute_output_shape(self, t_shape, x_shape=None):
        return tuple(t_shape)

    def get_config(self):
        return super().get_config()  # no arguments of its own

    def flops_per_example(self) -> int:
        """The projection's FLOPs (a 1x1 conv at x's size); the add is elementwise."""
        if self.kernel is None:
            return 0
        return 2 * int(self.x_shape[1]) * int(self.x_shape[2]) * int(self.kernel.shape[2]) * \
            int(self.kernel.shape[3])
