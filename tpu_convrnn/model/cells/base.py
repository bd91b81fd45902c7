"""The contract every convolutional recurrent cell follows.

A cell is a Keras layer that computes **one time step**::

    output, new_state = cell(drive, state, inputs=None, feedback=None)

* ``drive`` [N, H, W, I]: the layer's drive, i.e. the pre-memory conv output ``u`` of spec §1.2.
* ``state``: a tuple of [N, H, W, depth] tensors, one per name in ``cell.state_names`` (e.g.
  ``("c", "h")``); ``cell.get_initial_state(batch_size)`` gives the zero state of spec §1.3.
* ``inputs`` [N, H, W, C_x]: the layer input ``x`` (harbor output) for residual/bypass paths.
* ``feedback`` [N, H, W, F]: long-range feedback, already resized to the layer's resolution.

Spatial sizes are static and fixed at build time; time is unrolled by the caller, so a cell never
loops. Cells use ``keras.ops`` only. Weight decay follows the TF1 convention: a cell's
``weight_decay=s`` means TF1 ``l2_regularizer(s)`` = Keras ``L2(s / 2)`` (see ``ops.tf1_l2``).
"""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model import depthwise

from tpu_convrnn.model import tf1_ops


class ConvCell(keras.layers.Layer):
    """Base class of all cells: validation, state structure, zero state, conv factory."""

    #: Names of the state tensors, in the order of the state tuple.
    state_names: tuple = ("h",)
    #: Whether ``call`` needs the layer input ``x`` / accepts feedback.
    needs_inputs: bool = False
    accepts_feedback: bool = False

    def __init__(self, weight_decay: float = 0.0, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.weight_decay = float(weight_decay or 0.0)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    # ------------------------------------------------------------------ errors and checks
    def _error(self, what: str, expected, given) -> ValueError:
        return ValueError(
            f"{type(self).__name__} layer '{self.name}': {what}: expected {expected}, got {given}")

    def _check_rank4(self, what, shape):
        if shape is None or len(shape) != 4:
            raise self._error(f"{what} rank", "a rank-4 [N, H, W, C] tensor",
                              f"shape {None if shape is None else tuple(shape)}")
        if shape[1] is None or shape[2] is None or shape[3] is None:
            raise self._error(f"{what} shape", "static H, W and C", f"shape {tuple(shape)}")

    def _check_activation(self, name, arg: str):
        return tf1_ops.get_activation(name, f"{type(self).__name__} layer '{self.name}', {arg}")

    def _check_choice(self, value, choices, arg: str):
        if value not in choices:
            raise self._error(f"option {arg}", f"one of {choices}", repr(value))
        return value

    # ------------------------------------------------------------------ building
    def build(self, drive_shape, state_shape=None, inputs_shape=None, feedback_shape=None):
        self._check_rank4("drive", drive_shape)
        self.height, self.width = int(drive_shape[1]), int(drive_shape[2])
        self.drive_depth = int(drive_shape[3])
        self.inputs_depth = None
        self.feedback_depth = None
        if inputs_shape is not None:
            self._check_rank4("inputs", inputs_shape)
            self.inputs_depth = int(inputs_shape[3])
        if self.needs_inputs and inputs_shape is None:
            raise self._error("inputs", "the layer input x (for the residual/bypass paths)", "None")
        if feedback_shape is not None:
            if not self.accepts_feedback:
                raise self._error("feedback", "None (this cell takes no feedback)",
                                  f"shape {tuple(feedback_shape)}")
            self._check_rank4("feedback", feedback_shape)
            self.feedback_depth = int(feedback_shape[3])
        self.build_cell()
        if state_shape is not None:
            self._check_state(state_shape)
        self.built = True

    def build_cell(self):  # pragma: no cover - abstract
        """Creates the weights; ``self.height/width/drive_depth/inputs_depth/feedback_depth``
        are set."""
        raise NotImplementedError

    def state_depths(self, drive_depth: int) -> dict:  # pragma: no cover - abstract
        """Mapping state name -> channel depth for a drive of ``drive_depth`` channels (known
        before building: it follows from the config and the drive)."""
        raise NotImplementedError

    def compute_output_shape(self, drive_shape, state_shape=None, inputs_shape=None,
                             feedback_shape=None):
        """Keras' shape rule for one step: ``(output shape, state shapes)`` for a drive of
        ``drive_shape`` ([N, H, W, C]); needs no build. The other inputs never change it."""
        n, h, w = tuple(drive_shape[:3])
        depths = self.state_depths(int(drive_shape[3]))
        return (n, h, w, depths["h"]), tuple((n, h, w, depths[s]) for s in self.state_names)

    @property
    def output_depth(self) -> int:
        """Channels of the cell's output (valid once built)."""
        return self.state_depths(self.drive_depth)["h"]

    def state_shapes(self) -> tuple:
        """(H, W, depth) of each state tensor, in ``state_names`` order (valid once built)."""
        depths = self.state_depths(self.drive_depth)
        return tuple((self.height, self.width, depths[n]) for n in self.state_names)

    def get_initial_state(self, batch_size):
        """The zero state: a tuple of [batch, H, W, depth] zeros in the compute dtype."""
        return tuple(ops.zeros((batch_size,) + s, dtype=self.compute_dtype)
                     for s in self.state_shapes())

    def _check_state(self, state_shape):
        shapes = tuple(state_shape) if isinstance(state_shape, (tuple, list)) else None
        if shapes is None or len(shapes) != len(self.state_names) or not all(
                isinstance(s, (tuple, list)) for s in shapes):
            raise self._error("state structure", f"a tuple of {len(self.state_names)} tensors "
                              f"{self.state_names}", repr(state_shape))
        for name, want, got in zip(self.state_names, self.state_shapes(), shapes):
            if len(got) != 4 or tuple(got[1:]) != want:
                raise self._error(f"state '{name}' shape", f"[N, {want[0]}, {want[1]}, {want[2]}]",
                                  f"{list(got)}")

    def _check_step(self, drive, state, inputs, feedback):
        if tuple(drive.shape[1:]) != (self.height, self.width, self.drive_depth):
            raise self._error("drive shape", f"[N, {self.height}, {self.width}, "
                              f"{self.drive_depth}]", list(drive.shape))
        self._check_state(tuple(tuple(s.shape) for s in state)
                          if isinstance(state, (tuple, list)) else state)
        for what, t, depth in (("inputs", inputs, self.inputs_depth),
                               ("feedback", feedback, self.feedback_depth)):
            if (t is None) != (depth is None):
                raise self._error(what, "None" if depth is None else f"[N, {self.height}, "
                                  f"{self.width}, {depth}] as at build time",
                                  "None" if t is None else list(t.shape))
            if t is not None and tuple(t.shape[1:]) != (self.height, self.width, depth):
                raise self._error(f"{what} shape", f"[N, {self.height}, {self.width}, {depth}]",
                                  list(t.shape))

    def call(self, drive, state=None, inputs=None, feedback=None):
        """One step: ``(output, new state)``. ``state`` None (or omitted) is the zero state."""
        if state is None:
            state = self.get_initial_state(ops.shape(drive)[0])
        self._check_step(drive, state, inputs, feedback)
        return self.step(drive, tuple(state), inputs, feedback)

    def step(self, drive, state, inputs, feedback):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ weight factories
    def make_conv(self, name, filters, kernel_size, in_depth, *, use_bias=True, separable=False,
                  kernel_initializer=None, bias_initializer=None, weight_decay=None,
                  bias_decay=None):
        """A built SAME conv sublayer (full, or depthwise-separable with multiplier 1).

        ``weight_decay``/``bias_decay`` are TF1 ``l2_regularizer`` scales (default: the cell's
        ``weight_decay`` on the kernel, none on the bias). Separable convs compute their
        depthwise part as the execution setting ``depthwise`` says.
        """
        wd = self.weight_decay if weight_decay is None else weight_decay
        common = dict(padding="same", use_bias=use_bias, name=name, dtype=self.dtype_policy,
                      bias_initializer=bias_initializer or self.bias_initializer,
                      bias_regularizer=tf1_ops.tf1_l2(bias_decay))
        init = kernel_initializer or self.kernel_initializer
        if separable:
            layer = depthwise.SeparableConv2D(
                filters, kernel_size, depthwise_initializer=init, pointwise_initializer=init,
                depthwise_regularizer=tf1_ops.tf1_l2(wd), pointwise_regularizer=tf1_ops.tf1_l2(wd),
                **common)
        else:
            layer = keras.layers.Conv2D(filters, kernel_size, kernel_initializer=init,
                                        kernel_regularizer=tf1_ops.tf1_l2(wd), **common)
        layer.build((None, self.height, self.width, in_depth))
        return layer

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
