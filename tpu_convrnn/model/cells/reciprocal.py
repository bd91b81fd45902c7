"""Reciprocal gated cells (spec §4.7 generic form, §4.8 the searched "median" configuration)."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model import execution

from tpu_convrnn.model import fused_convs, tf1_ops
from tpu_convrnn.model.cells.base import ConvCell
from tpu_convrnn.model.cells.searched import MEDIAN_CONFIG

FEEDBACK_ENTRIES = ("input", "cell", "out")


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class ReciprocalGatedCell(ConvCell):
    """The reciprocal gated cell: a cell state ``c`` (depth ``cell_depth``) and an output state
    ``h`` (depth ``out_depth``) that gate each other. State ``(c, h)``; output ``h``.

    With ``u`` the drive, ``x`` the layer input and ``f`` the feedback (spec §4.7)::

        u~  = act_in(u [+ fb(K_fb * f) if feedback_entry == 'input'])
        c_in = [K_rc * x if cell_residual] + [K_ic * u~ if input_to_cell]
               [+ fb(K_fb * f) if feedback_entry == 'cell']
        c_t = act_c(LN?((tau_0 + tau_k f_tau(K_ctau * c)) * c + (g_0 + g_k f_g(K_cg * h)) * c_in))
        h_in = (K_io * u~ if input_to_out else u~) [+ K_co * c if cell_to_out]
               [+ R(x) if out_residual] [+ fb(K_fo * f) if feedback_entry == 'out']
        h_t = act_h((tau_0 + tau_k f_tau(K_htau * h)) * h + (g_0 + g_k f_g(b_h)) * h_in)
        b_h = [K_hg * c unless cell_to_out] [+ K_rg * x if residual_to_out_gate]

    where ``c``, ``h`` on the right are the previous states (both gates read the *other* state
    of the previous step). ``R(x)`` is ``x`` when depths match, else a 1x1 projection without bias
    (Glorot init, no weight decay). A gate whose drive is empty is the constant
    ``g_0 + g_k f_g(0)``.

    ``use_bias=False`` reproduces ``cells.py`` (rgc_shallow), whose conv helper never creates a
    bias. τ/gate convs may be depth-separable (depthwise k x k, multiplier 1, then pointwise).
    Weight decay (TF1 scale) applies to kernels only. ``cell_depth``/``out_depth`` default to
    the drive depth. ``LN?`` is ``ops.LayerNormHWC`` with variance epsilon
    ``layer_norm_epsilon`` (the original's 1e-12) when ``layer_norm``.
    """

    state_names = ("c", "h")
    accepts_feedback = True

    def __init__(self, out_depth=None, cell_depth=None, *, tau_filter_size=3,
                 cell_tau_filter_size=None, gate_filter_size=3, ff_filter_size=3,
                 in_out_filter_size=3, tau_depth_separable=False, gate_depth_separable=False,
                 tau_nonlinearity="sigmoid", gate_nonlinearity="sigmoid", tau_offset=1.0,
                 tau_multiplier=-1.0, gate_offset=1.0, gate_multiplier=-1.0,
                 input_activation="identity", cell_activation="elu", out_activation="elu",
                 input_to_cell=True, input_to_out=False, cell_to_out=False, cell_residual=False,
                 out_residual=False, residual_to_out_gate=False, layer_norm=False,
                 feedback_entry="out", feedback_filter_size=1, feedback_depth_separable=False,
                 feedback_activation="identity", use_bias=False, layer_norm_epsilon=1e-12,
                 **kwargs):
        super().__init__(**kwargs)
        self.out_depth = None if out_depth is None else int(out_depth)
        self.cell_depth = None if cell_depth is None else int(cell_depth)
        self.tau_filter_size = int(tau_filter_size)
        self.cell_tau_filter_size = int(cell_tau_filter_size or tau_filter_size)
        self.gate_filter_size = int(gate_filter_size)
        self.ff_filter_size = int(ff_filter_size)
        self.in_out_filter_size = int(in_out_filter_size)
        self.tau_depth_separable = bool(tau_depth_separable)
        self.gate_depth_separable = bool(gate_depth_separable)
        self.tau_offset, self.tau_multiplier = float(tau_offset), float(tau_multiplier)
        self.gate_offset, self.gate_multiplier = float(gate_offset), float(gate_multiplier)
        self.input_to_cell = bool(input_to_cell)
        self.input_to_out = bool(input_to_out)
        self.cell_to_out = bool(cell_to_out)
        self.cell_residual = bool(cell_residual)
        self.out_residual = bool(out_residual)
        self.residual_to_out_gate = bool(residual_to_out_gate)
        self.layer_norm = bool(layer_norm)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.feedback_entry = self._check_choice(feedback_entry, FEEDBACK_ENTRIES,
                                                 "feedback_entry")
        self.feedback_filter_size = int(feedback_filter_size)
        self.feedback_depth_separable = bool(feedback_depth_separable)
        self.use_bias = bool(use_bias)
        self.activations = dict(tau_nonlinearity=tau_nonlinearity,
                                gate_nonlinearity=gate_nonlinearity,
                                input_activation=input_activation, cell_activation=cell_activation,
                                out_activation=out_activation,
                                feedback_activation=feedback_activation)
        self._fn = {k: self._check_activation(v, k) for k, v in self.activations.items()}
        self.needs_inputs = self.cell_residual or self.out_residual or self.residual_to_out_gate
        if self.cell_depth is not None and self.cell_depth < 1:
            raise self._error("cell_depth", "a positive channel count", self.cell_depth)
        if not (self.input_to_cell or self.cell_residual or self.feedback_entry == "cell"):
            # c_in would be empty: the cell state could never be driven.
            raise self._error("cell input", "at least one of input_to_cell, cell_residual or "
                              "feedback_entry='cell'", "none")

    # ------------------------------------------------------------------ building
    def state_depths(self, drive_depth):
        out = int(self.out_depth or drive_depth)
        return {"c": int(self.cell_depth or out), "h": out}

    def _conv(self, name, reads, filters, k, separable=False, **kw):
        """The conv ``name`` of the tensor ``reads`` ('u' drive, 'c', 'h' states, 'x' layer
        input, 'f' feedback), which fixes its input depth; recorded for ``fuse_convs``."""
        self.reads[name] = reads
        depth = {"u": self.drive_depth, "x": self.inputs_depth, "f": self.feedback_depth,
                 **self.state_depths(self.drive_depth)}[reads]
        kw.setdefault("use_bias", self.use_bias)
        self.convs[name] = self.make_conv(name, filters, k, depth, separable=separable, **kw)

    def build_cell(self):
        i, x = self.drive_depth, self.inputs_depth
        depths = self.state_depths(i)
        d, c = depths["h"], depths["c"]
        if not self.input_to_out and d != i:
            raise self._error("drive channels", f"{d} (out_depth; input_to_out=False feeds the "
                              "drive to the out state directly)", i)
        ts, tsep, gs, gsep = (self.tau_filter_size, self.tau_depth_separable,
                              self.gate_filter_size, self.gate_depth_separable)
        self.convs, self.reads = {}, {}
        # cell update: K_ctau * c, K_cg * h, K_ic * u, K_rc * x
        self._conv("cell_tau", "c", c, self.cell_tau_filter_size, tsep)
        self._conv("cell_gate", "h", c, gs, gsep)
        if self.input_to_cell:
            self._conv("input_to_cell", "u", c, self.ff_filter_size)
        if self.cell_residual:
            self._conv("cell_residual", "x", c, self.ff_filter_size)
        # out update: K_htau * h, K_hg * c or K_co * c, K_io * u, K_rg * x, R(x)
        self._conv("out_tau", "h", d, ts, tsep)
        if not self.cell_to_out:
            self._conv("out_gate", "c", d, gs, gsep)
        else:
            self._conv("cell_to_out", "c", d, gs)
        if self.input_to_out:
            self._conv("input_to_out", "u", d, self.in_out_filter_size)
        if self.residual_to_out_gate:
            self._conv("residual_to_out_gate", "x", d, gs)
        if self.out_residual and x != d:
            self._conv("residual_add", "x", d, 1, use_bias=False, weight_decay=0.0,
                       kernel_initializer=keras.initializers.GlorotUniform())
        if self.feedback_depth is not None:  # K_fb * f into the input, cell or out
            target = {"input": i, "cell": c, "out": d}[self.feedback_entry]
            self._conv("feedback", "f", target, self.feedback_filter_size,
                       self.feedback_depth_separable)
        self.norm = None
        if self.layer_norm:
            self.norm = tf1_ops.LayerNormHWC(self.layer_norm_epsilon, name="cell_layer_norm",
                                            dtype=self.dtype_policy)
            self.norm.build((None, self.height, self.width, c))

    # ------------------------------------------------------------------ one step
    def _retain(self, a):
        return self.tau_offset + self.tau_multiplier * self._fn["tau_nonlinearity"](a)

    def _gain(self, b):
        if b is None:
            b = ops.zeros((), dtype=self.compute_dtype)
        return self.gate_offset + self.gate_multiplier * self._fn["gate_nonlinearity"](b)

    def step(self, drive, state, inputs, feedback):
        c, h, x = state[0], state[1], inputs  # the previous states; the layer input
        K = _StepConvs(self)  # K(name, t): the conv ``name`` of tensor t
        fn = self._fn
        fb = None if feedback is None else fn["feedback_activation"](K("feedback", feedback))
        u = fn["input_activation"](drive + fb if self.feedback_entry == "input" and
                                   fb is not None else drive)
        c_in = _sum(K("cell_residual", x) if self.cell_residual else None,
                    K("input_to_cell", u) if self.input_to_cell else None,
                    fb if self.feedback_entry == "cell" else None)
        c_pre = self._retain(K("cell_tau", c)) * c + self._gain(K("cell_gate", h)) * c_in
        c_t = fn["cell_activation"](self.norm(c_pre) if self.norm is not None else c_pre)

        h_in = _sum(K("input_to_out", u) if self.input_to_out else u,
                    K("cell_to_out", c) if self.cell_to_out else None,
                    (K("residual_add", x) if "residual_add" in self.convs else x)
                    if self.out_residual else None,
                    fb if self.feedback_entry == "out" else None)
        b_h = _sum(None if self.cell_to_out else K("out_gate", c),
                   K("residual_to_out_gate", x) if self.residual_to_out_gate else None)
        h_t = fn["out_activation"](self._retain(K("out_tau", h)) * h + self._gain(b_h) * h_in)
        return h_t, (c_t, h_t)

    def get_config(self):
        cfg = {k: getattr(self, k) for k in (
            "out_depth", "cell_depth", "tau_filter_size", "cell_tau_filter_size",
            "gate_filter_size", "ff_filter_size", "in_out_filter_size", "tau_depth_separable",
            "gate_depth_separable", "tau_offset", "tau_multiplier", "gate_offset",
            "gate_multiplier", "input_to_cell", "input_to_out", "cell_to_out", "cell_residual",
            "out_residual", "residual_to_out_gate", "layer_norm", "layer_norm_epsilon",
            "feedback_entry",
            "feedback_filter_size", "feedback_depth_separable", "use_bias")}
        return {**super().get_config(), **cfg, **self.activations}


class _StepConvs:
    """``K(name, t)``: the cell's conv ``name`` applied to ``t`` in this step. With the execution
    setting ``fuse_convs``, the first conv asked of a tensor runs every conv of the cell that
    reads that tensor (``cell.reads``, declared in ``build_cell``) as one convolution
    (``fused_convs``); the others come from that result."""

    def __init__(self, cell):
        self.cell = cell
        self.fuse = execution.current().fuse_convs
        self.done = {}  # conv name -> (tensor it read, output)

    def __call__(self, name, t):
        cell = self.cell
        if not self.fuse:
            return cell.convs[name](t)
        if name not in self.done:
            src = cell.reads[name]
            names = [n for n in cell.convs if cell.reads[n] == src]
            outs = fused_convs.apply_shared(t, [cell.convs[n] for n in names])
            self.done.update({n: (t, o) for n, o in zip(names, outs)})
        read, out = self.done[name]
        if read is not t:
            raise AssertionError(f"{cell.name}: conv {name!r} asked of another tensor than "
                                 f"the other convs of {cell.reads[name]!r}")
        return out


def _sum(*terms):
    """The sum of the terms that are not None (None if all are: a gate without drive)."""
    terms = [t for t in terms if t is not None]
    out = terms[0] if terms else None
    for t in terms[1:]:
        out = out + t
    return out


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class MedianReciprocalGatedCell(ReciprocalGatedCell):
    """The searched "median" reciprocal gated cell of rgc_intermediate (spec §4.8).

    A ``ReciprocalGatedCell`` whose defaults are ``MEDIAN_CONFIG``: cell depth 64, 7x7
    depth-separable τ (sigmoid) and gate (tanh) convs with offsets/multipliers ±0.922 / ±0.701,
    ELU input, 2x2 input->cell, 3x3 input->out, residual input with a 1x1 projection when depths
    differ, and 1x1 feedback entering at "out". Any argument can still be overridden.
    """

    def __init__(self, out_depth=None, **kwargs):
        super().__init__(out_depth, **{**MEDIAN_CONFIG, **kwargs})
