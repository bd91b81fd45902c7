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

Each op is one Keras layer (``tpu_convrnn.model.node_ops``), made when the node is.

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

from tpu_convrnn.model import cells as cells_lib
from tpu_convrnn.model import node_ops, tf1_ops


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class Node(keras.layers.Layer):
    """A graph node; ``call(x, others, state) -> (output, new_state)`` computes one time step.

    Every op is a Keras layer made here (``pre_ops``, ``cell``, ``post_ops``), so shapes come
    from the layers (``compute_output_shape``) and ``summary()`` shows each op."""

    def __init__(self, pre=(), memory=None, post=(), **kwargs):
        super().__init__(**kwargs)
        self.pre_config = [node_ops.normalize_op(o, f"node '{self.name}' pre") for o in pre]
        self.post_config = [node_ops.normalize_op(o, f"node '{self.name}' post") for o in post]
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
        self.pre_ops = [node_ops.op_layer(o, f"node '{self.name}' pre", self.dtype_policy)
                        for o in self.pre_config]
        self.post_ops = [node_ops.op_layer(o, f"node '{self.name}' post", self.dtype_policy)
                         for o in self.post_config]

    # ------------------------------------------------------------------ shapes
    def _drive_shape(self, x_shape, others_shape):
        """The shape entering the pre-memory ops: ``x``, with the other inputs concatenated
        unless they are the cell's feedback."""
        x_shape = tuple(x_shape)
        if len(x_shape) != 4:
            raise ValueError(f"node '{self.name}': feedforward input must be [N, H, W, C], "
                             f"got shape {x_shape}")
        others = [tuple(s) for s in (others_shape or [])]
        for s in others:
            if len(s) != 4:
                raise ValueError(f"node '{self.name}': cannot combine an input of shape {s} "
                                 f"with the feedforward input {x_shape} (spatial inputs only)")
        depth = sum(int(s[-1]) for s in others)
        if others and not (self.cell is not None and self.cell.accepts_feedback):
            return x_shape[:3] + (int(x_shape[3]) + depth,), None
        return x_shape, (depth if others else None)

    def _shapes(self, x_shape, others_shape=None):
        """Walks the ops: yields (layer, where, input shape) and returns the output shape."""
        shape, _ = self._drive_shape(x_shape, others_shape)
        steps = []
        for layer in self.pre_ops:
            steps.append((layer, "pre", shape))
            shape = node_ops.output_shape(layer, shape, f"node '{self.name}' pre")
        if self.cell is not None:
            if len(shape) != 4:
                raise ValueError(f"node '{self.name}': the cell needs a [N, H, W, C] drive, the "
                                 f"pre-memory ops give {shape}")
            steps.append((self.cell, "memory", shape))
            shape = self.cell.compute_output_shape(shape)[0]
        for layer in self.post_ops:
            steps.append((layer, "post", shape))
            shape = node_ops.output_shape(layer, shape, f"node '{self.name}' post")
        return steps, shape

    def compute_output_shape(self, x_shape, others_shape=None):
        """The output shape for a feedforward input of ``x_shape`` (other inputs never change
        it); errors name the node and op. Needs no build."""
        return self._shapes(x_shape, others_shape)[1]

    def compute_output_spec(self, x, others=None, state=()):
        steps, shape = self._shapes(x.shape)  # (other inputs never change a shape)
        drive = [s for layer, _, s in steps if layer is self.cell]
        states = self.cell.compute_output_shape(drive[0])[1] if drive else ()
        spec = [keras.KerasTensor((x.shape[0],) + tuple(s[1:]), dtype=self.compute_dtype)
                for s in (shape, *states)]
        return spec[0], tuple(spec[1:])

    # ------------------------------------------------------------------ building
    def build(self, x_shape, others_shape=None):
        """``x_shape``: feedforward input; ``others_shape``: list of shapes of the other inputs."""
        x_shape = tuple(x_shape)
        _, fb_depth = self._drive_shape(x_shape, others_shape)
        self.feedback_to_cell = fb_depth is not None
        steps, out = self._shapes(x_shape, others_shape)
        for layer, where, shape in steps:
            if layer is self.cell:
                f_shape = shape[:3] + (fb_depth,) if self.feedback_to_cell else None
                # The layer input x reaches the cell (residual/bypass paths) when the
                # pre-memory ops keep its spatial size, as in every released graph.
                x_for_cell = shape[:3] + (x_shape[3],) if x_shape[1:3] == shape[1:3] else None
                layer.build(shape, inputs_shape=x_for_cell, feedback_shape=f_shape)
            elif isinstance(layer, node_ops.ResidualAdd):
                layer.build(shape, x_shape)
            else:
                layer.build(shape)
        if tuple(self.compute_output_shape(x_shape)[1:]) != tuple(out[1:]):
            raise ValueError(f"node '{self.name}': its other inputs ({fb_depth or 0} channels "
                             "more) change its output shape; give it a pre-memory conv or a cell")
        self.built = True

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
        others = [tf1_ops.resize_bilinear_aligned(o, size) for o in others]
        fb = None
        h = x
        if others:
            if self.feedback_to_cell:
                fb = ops.concatenate(others, axis=-1) if len(others) > 1 else others[0]
            else:
                h = ops.concatenate([x] + others, axis=-1)
        for layer in self.pre_ops:
            h = layer(h)
        new_state = ()
        if self.cell is not None:
            cell_x = x if self.cell.inputs_depth is not None else None
            h, new_state = self.cell(h, state or None, inputs=cell_x, feedback=fb)
        for layer in self.post_ops:
            h = layer(h, x) if isinstance(layer, node_ops.ResidualAdd) else layer(h)
        return h, tuple(new_state)

    def get_config(self):
        return {**super().get_config(), "pre": self.pre_config, "memory": self.memory_config,
                "post": self.post_config}
