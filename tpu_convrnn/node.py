"""One node of a ConvRNN graph (spec §1.2): harbor -> pre-memory ops -> memory -> post-memory ops.

A node is configured by plain data (lists of dicts and strings), so graphs can be written in gin
or JSON. Ops:

* ``{"op": "conv", "filters", "kernel_size", "strides"=1, "padding"="same", "activation"=None,
  "kernel_initializer", "bias_initializer", "weight_decay"}`` (TF1 scale, kernel and bias);
* ``{"op": "fc", "units", ...}`` on a [N, C] tensor;
* ``"elu"``, ``"relu"``, ``"sigmoid"``, ``"tanh"``; ``"maxpool"`` (2x2/2 SAME, or
  ``{"op": "maxpool", "pool_size", "strides"}``); ``"gap"`` (global average pool to [N, C]);
* ``"residual_add"`` (post only): adds the node's feedforward input ``x``, through a 1x1
  projection without bias when depths differ (Glorot init, no weight decay) and resized
  bilinearly (aligned corners) when sizes differ.

Any op may carry ``"name"`` (the sublayer's name; the zoo uses the original scopes such as
``pre_0``). The memory is ``None`` (identity) or a cell config ``{"kind": <cells.CELLS key>,
**kwargs}``.

Harbor: the feedforward input ``x`` (the node's immediate feedforward predecessor, or the frame
for the input node) keeps its size; every other input is resized to it (bilinear, aligned
corners). If the cell takes feedback (reciprocal gated cells) the other inputs, concatenated in
the given order, are its feedback ``f``; otherwise they are concatenated after ``x`` before the
pre-memory ops, as a TF1 harbor would.
"""
from __future__ import annotations

import copy

import keras
from keras import ops

from tpu_convrnn import cells as cells_lib
from tpu_convrnn import execution
from tpu_convrnn import ops as cr_ops

_POINTWISE = ("elu", "relu", "sigmoid", "tanh", "identity")
VARIANCE_SCALING = {"class_name": "VarianceScaling", "config": {
    "scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}}


def _normalize_op(op, where):
    if isinstance(op, str):
        op = {"op": op}
    if not isinstance(op, dict) or "op" not in op:
        raise ValueError(f"{where}: expected an op name or a dict with key 'op', got {op!r}")
    return dict(op)


def _op_output_shape(op, shape, where):
    kind = op["op"]
    if kind == "conv":
        if len(shape) != 4:
            raise ValueError(f"{where}: conv needs a [N, H, W, C] input, got shape {shape}")
        k, s = op["kernel_size"], op.get("strides", 1)
        k = (k, k) if isinstance(k, int) else tuple(k)
        if op.get("padding", "same") == "same":
            hw = [-(-int(n) // s) for n in shape[1:3]]
        else:
            hw = [(int(n) - kk) // s + 1 for n, kk in zip(shape[1:3], k)]
            if min(hw) < 1:
                raise ValueError(f"{where}: a {k[0]}x{k[1]} 'valid' conv needs an input of at "
                                 f"least that size, got {shape[1]}x{shape[2]} (the image size "
                                 "is too small for this graph)")
        return (shape[0], hw[0], hw[1], int(op["filters"]))
    if kind == "fc":
        if len(shape) != 2:
            raise ValueError(f"{where}: fc needs a [N, C] input (add 'gap' first), got shape "
                             f"{shape}")
        return (shape[0], int(op["units"]))
    if kind == "maxpool":
        s = op.get("strides", 2)
        return (shape[0], -(-int(shape[1]) // s), -(-int(shape[2]) // s), shape[3])
    if kind == "gap":
        return (shape[0], shape[-1])
    return shape


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class Node(keras.layers.Layer):
    """A graph node; ``call(x, others, state) -> (output, new_state)`` computes one time step."""

    def __init__(self, pre=(), memory=None, post=(), **kwargs):
        execution.drop_legacy_keys(kwargs)
        super().__init__(**kwargs)
        self.pre_config = [_normalize_op(o, f"node '{self.name}' pre") for o in pre]
        self.post_config = [_normalize_op(o, f"node '{self.name}' post") for o in post]
        self.memory_config = copy.deepcopy(memory)
        self.cell = None
        if memory is not None:
            if not isinstance(memory, dict) or "kind" not in memory:
                raise ValueError(f"node '{self.name}': memory must be None or a dict with a "
                                 f"'kind' key, got {memory!r}")
            cfg = dict(memory)
            kind = cfg.pop("kind")
            cfg.setdefault("name", "cell")
            try:
                self.cell = cells_lib.make_cell(kind, dtype=self.dtype_policy, **cfg)
            except (TypeError, ValueError) as e:
                raise ValueError(f"node '{self.name}' memory: {e}") from e

    # ------------------------------------------------------------------ building
    def _make_op(self, op, shape, where, x_shape):
        """Returns (callable or layer, output shape) for one op at input ``shape``."""
        kind = op["op"]
        name = op.get("name")
        dt = self.dtype_policy
        if kind in ("conv", "fc"):
            _op_output_shape(op, shape, f"node '{self.name}' {where}")  # validates the input
            wd = op.get("weight_decay", 0.0)
            common = dict(kernel_initializer=op.get("kernel_initializer", VARIANCE_SCALING),
                          bias_initializer=op.get("bias_initializer", "zeros"),
                          kernel_regularizer=cr_ops.tf1_l2(wd),
                          bias_regularizer=cr_ops.tf1_l2(wd), name=name, dtype=dt)
            if kind == "conv":
                layer = keras.layers.Conv2D(
                    op["filters"], op["kernel_size"], strides=op.get("strides", 1),
                    padding=op.get("padding", "same"), use_bias=op.get("use_bias", True),
                    **common)
            else:
                layer = keras.layers.Dense(op["units"], **common)
            act = cr_ops.get_activation(op.get("activation"), f"node '{self.name}' {where}")
        elif kind == "maxpool":
            layer = keras.layers.MaxPooling2D(op.get("pool_size", 2), op.get("strides", 2),
                                              padding="same", name=name, dtype=dt)
            act = None
        elif kind == "gap":
            layer = keras.layers.GlobalAveragePooling2D(name=name, dtype=dt)
            act = None
        elif kind in _POINTWISE:
            fn = cr_ops.get_activation(kind)
            return (lambda t, x=None: fn(t)), shape
        elif kind == "residual_add":
            if where != "post":
                raise ValueError(f"node '{self.name}': residual_add is a post-memory op")
            proj = None
            if int(shape[-1]) != int(x_shape[-1]):
                proj = keras.layers.Conv2D(shape[-1], 1, use_bias=False, name=name or "residual",
                                           kernel_initializer="glorot_uniform", dtype=dt)
                proj.build(tuple(x_shape))
                self._op_layers.append(proj)
            size = (int(shape[1]), int(shape[2]))

            def add(t, x, proj=proj, size=size):
                r = proj(x) if proj is not None else x
                return t + cr_ops.resize_bilinear_aligned(r, size)
            return add, shape
        else:
            raise ValueError(f"node '{self.name}' {where}: unknown op {kind!r}; expected one of "
                             "conv, fc, maxpool, gap, residual_add, " + ", ".join(_POINTWISE))
        layer.build(tuple(shape))
        self._op_layers.append(layer)
        out = tuple(layer.compute_output_shape(tuple(shape)))

        def apply(t, x=None, layer=layer, act=act):
            t = layer(t)
            return act(t) if act is not None else t
        return apply, out

    def build(self, x_shape, others_shape=None):
        """``x_shape``: feedforward input; ``others_shape``: list of shapes of the other inputs."""
        x_shape = tuple(x_shape)
        others = [tuple(s) for s in (others_shape or [])]
        self._op_layers = []
        if len(x_shape) != 4:
            raise ValueError(f"node '{self.name}': feedforward input must be [N, H, W, C], "
                             f"got shape {x_shape}")
        for s in others:
            if len(s) != 4:
                raise ValueError(f"node '{self.name}': cannot combine an input of shape {s} "
                                 f"with the feedforward input {x_shape} (spatial inputs only)")
        fb_depth = sum(int(s[-1]) for s in others)
        self.feedback_to_cell = bool(others) and self.cell is not None and \
            self.cell.accepts_feedback
        shape = x_shape
        if others and not self.feedback_to_cell:
            shape = x_shape[:3] + (int(x_shape[3]) + fb_depth,)
        self._pre = []
        for op in self.pre_config:
            fn, shape = self._make_op(op, shape, "pre", x_shape)
            self._pre.append(fn)
        if self.cell is not None:
            if len(shape) != 4:
                raise ValueError(f"node '{self.name}': the cell needs a [N, H, W, C] drive, the "
                                 f"pre-memory ops give {shape}")
            f_shape = shape[:3] + (fb_depth,) if self.feedback_to_cell else None
            # The layer input x reaches the cell (residual/bypass paths) when the pre-memory
            # ops keep its spatial size, as in every released graph.
            x_for_cell = shape[:3] + (x_shape[3],) if x_shape[1:3] == shape[1:3] else None
            self.cell.build(shape, inputs_shape=x_for_cell, feedback_shape=f_shape)
            shape = shape[:3] + (self.cell.output_depth,)
        self._post = []
        for op in self.post_config:
            fn, shape = self._make_op(op, shape, "post", x_shape)
            self._post.append(fn)
        self.output_shape_ = tuple(shape)
        if tuple(self.infer_output_shape(x_shape)[1:]) != self.output_shape_[1:]:
            raise ValueError(f"node '{self.name}': its other inputs ({fb_depth} channels) change "
                             "its output shape; give it a pre-memory conv or a cell")
        self.built = True

    def infer_output_shape(self, x_shape):
        """Output shape for a feedforward input shape, without building (feedback inputs never
        change it). Errors name the node and op."""
        shape = tuple(x_shape)
        if len(shape) != 4:
            raise ValueError(f"node '{self.name}': feedforward input must be [N, H, W, C], "
                             f"got shape {shape}")
        for where, ops_ in (("pre", self.pre_config), ("post", self.post_config)):
            if where == "post" and self.cell is not None:
                shape = shape[:3] + (self.cell.output_depth_for(int(shape[3])),)
            for op in ops_:
                shape = _op_output_shape(op, shape, f"node '{self.name}' {where}")
        return shape

    def compute_output_shape(self, x_shape, others_shape=None):
        return (x_shape[0],) + self.output_shape_[1:]

    @property
    def stochastic(self) -> bool:
        """Whether any of its layers draws random numbers (e.g. dropout) in training: such a
        node-step differs per example and between steps, so the unroll never shares it."""
        return any(getattr(layer, "_seed_generators", None) for layer in self._flatten_layers())

    # ------------------------------------------------------------------ running
    def get_initial_state(self, batch_size):
        return () if self.cell is None else self.cell.get_initial_state(batch_size)

    def call(self, x, others=None, state=()):
        others = list(others or [])
        size = (int(x.shape[1]), int(x.shape[2]))
        others = [cr_ops.resize_bilinear_aligned(o, size) for o in others]
        fb = None
        h = x
        if others:
            if self.feedback_to_cell:
                fb = ops.concatenate(others, axis=-1) if len(others) > 1 else others[0]
            else:
                h = ops.concatenate([x] + others, axis=-1)
        for fn in self._pre:
            h = fn(h, x)
        new_state = ()
        if self.cell is not None:
            cell_x = x if self.cell.inputs_depth is not None else None
            h, new_state = self.cell(h, state, inputs=cell_x, feedback=fb)
        for fn in self._post:
            h = fn(h, x)
        return h, tuple(new_state)

    def get_config(self):
        return {**super().get_config(), "pre": self.pre_config, "memory": self.memory_config,
                "post": self.post_config}
