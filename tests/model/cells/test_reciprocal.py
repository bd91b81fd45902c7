import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import MEDIAN_CONFIG, MedianReciprocalGatedCell, ReciprocalGatedCell

N, H, W = 2, 5, 5


def _conv(w, name, x, separable=False, bias=True):
    """The Keras sublayer `name` applied in NumPy (full or depth-separable, optional bias)."""
    b = weight(w, f"/{name}/bias") if bias else None
    if separable:
        return ref.depthwise_separable(x, weight(w, f"/{name}/depthwise_kernel"),
                                       weight(w, f"/{name}/pointwise_kernel"), b)
    return ref.conv2d(x, weight(w, f"/{name}/kernel"), b)


def numpy_generic(cfg, w, drives, xs, fbs, c_depth, d_depth):
    """Spec §4.7, term by term."""
    act = lambda k, default: ref.ACT[cfg.get(k, default)]  # noqa: E731
    sep_t, sep_g = cfg.get("tau_depth_separable", False), cfg.get("gate_depth_separable", False)
    bias = cfg.get("use_bias", False)
    t0, tk = cfg.get("tau_offset", 1.0), cfg.get("tau_multiplier", -1.0)
    g0, gk = cfg.get("gate_offset", 1.0), cfg.get("gate_multiplier", -1.0)
    f_tau, f_g = act("tau_nonlinearity", "sigmoid"), act("gate_nonlinearity", "sigmoid")
    entry = cfg.get("feedback_entry", "out")
    c = np.zeros((N, H, W, c_depth))
    h = np.zeros((N, H, W, d_depth))
    outs = []
    for u, x, f in zip(drives, xs, fbs):
        fb = None
        if f is not None:
            fb = act("feedback_activation", "identity")(_conv(w, "feedback", f, bias=bias))
        ut = act("input_activation", "identity")(u + fb if entry == "input" and f is not None
                                                  else u)
        c_in = 0.0
        if cfg.get("cell_residual"):
            c_in = c_in + _conv(w, "cell_residual", x, bias=bias)
        if cfg.get("input_to_cell", True):
            c_in = c_in + _conv(w, "input_to_cell", ut, bias=bias)
        if entry == "cell" and f is not None:
            c_in = c_in + fb
        a_c = _conv(w, "cell_tau", c, sep_t, bias)
        b_c = _conv(w, "cell_gate", h, sep_g, bias)
        c_pre = (t0 + tk * f_tau(a_c)) * c + (g0 + gk * f_g(b_c)) * c_in
        if cfg.get("layer_norm"):
            c_pre = ref.layer_norm_hwc(c_pre, weight(w, "gamma"), weight(w, "beta"))
        c_new = act("cell_activation", "elu")(c_pre)
        h_in = _conv(w, "input_to_out", ut, bias=bias) if cfg.get("input_to_out") else ut
        if cfg.get("cell_to_out"):
            h_in = h_in + _conv(w, "cell_to_out", c, bias=bias)
        if cfg.get("out_residual"):
            h_in = h_in + (x if x.shape[-1] == d_depth else
                           ref.conv2d(x, weight(w, "/residual_add/kernel")))
        if entry == "out" and f is not None:
            h_in = h_in + fb
        b_h = 0.0 if cfg.get("cell_to_out") else _conv(w, "out_gate", c, sep_g, bias)
        if cfg.get("residual_to_out_gate"):
            b_h = b_h + _conv(w, "residual_to_out_gate", x, bias=bias)
        a_h = _conv(w, "out_tau", h, sep_t, bias)
        h = act("out_activation", "elu")((t0 + tk * f_tau(a_h)) * h + (g0 + gk * f_g(b_h)) * h_in)
        c = c_new
        outs.append((h, c))
    return outs


CONFIGS = {
    # rgc_shallow (spec §4.7 instance): no biases, input->cell, residual->out gate.
    "rgc_shallow": (dict(input_to_cell=True, residual_to_out_gate=True), 8, 8, 6, None),
    "every_switch": (dict(cell_residual=True, cell_to_out=True, out_residual=True,
                          input_to_out=True, residual_to_out_gate=True, layer_norm=True,
                          use_bias=True, tau_offset=0.5, tau_multiplier=0.3, gate_offset=0.2,
                          gate_multiplier=0.7, tau_nonlinearity="tanh", input_activation="elu",
                          cell_activation="tanh", out_activation="relu", feedback_entry="input",
                          feedback_activation="elu", gate_depth_separable=True),
                     5, 8, 6, 3),
    "feedback_to_cell": (dict(feedback_entry="cell", use_bias=True, tau_depth_separable=True,
                              input_to_out=True, out_residual=True), 4, 7, 7, 5),
    "feedback_to_out": (dict(feedback_entry="out", use_bias=True, input_to_out=True,
                             out_residual=True, gate_nonlinearity="tanh"), 4, 8, 8, 5),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_generic_matches_numpy(name):
    cfg, c_depth, d_depth, x_depth, f_depth = CONFIGS[name]
    i_depth = d_depth if not cfg.get("input_to_out") else 6
    cell = ReciprocalGatedCell(out_depth=d_depth, cell_depth=c_depth, **cfg)
    cell.build((N, H, W, i_depth), inputs_shape=(N, H, W, x_depth),
               feedback_shape=None if f_depth is None else (N, H, W, f_depth))
    w = randomize(cell, seed=13, scale=0.25)
    steps = 4
    drives = random_inputs(14, steps, (N, H, W, i_depth))
    xs = random_inputs(15, steps, (N, H, W, x_depth))
    fbs = random_inputs(16, steps, (N, H, W, f_depth)) if f_depth else [None] * steps
    outs, states = unroll(cell, drives, xs, None if f_depth is None else fbs)
    want = numpy_generic(cfg, w, drives, xs, fbs, c_depth, d_depth)
    for t, (h, c) in enumerate(want):
        assert_close(outs[t], h, what=f"h t={t}")
        assert_close(states[t][0], c, what=f"c t={t}")
        assert_close(states[t][1], h, what=f"state h t={t}")


def test_rgc_shallow_has_no_biases():
    cell = ReciprocalGatedCell(input_to_cell=True, residual_to_out_gate=True)
    cell.build((1, 4, 4, 8), inputs_shape=(1, 4, 4, 4))
    assert not [v.path for v in cell.weights if "bias" in v.path]


@pytest.mark.parametrize("d,x,expected", [
    (256, 128, 3_244_032), (256, 256, 3_538_944), (512, 256, 12_976_128)])  # spec §6.3
def test_rgc_shallow_param_count(d, x, expected):
    cell = ReciprocalGatedCell(input_to_cell=True, residual_to_out_gate=True)
    cell.build((1, 2, 2, d), inputs_shape=(1, 2, 2, x))
    assert cell.count_params() == 45 * d * d + 9 * x * d == expected


def numpy_median(w, drives, xs, fbs, d):
    """Spec §4.8, unrolled over the given steps (``ref.median_rgc_step``)."""
    c = np.zeros((N, H, W, 64))
    h = np.zeros((N, H, W, d))
    outs = []
    for u, x, f in zip(drives, xs, fbs):
        h, c = ref.median_rgc_step(lambda s: weight(w, s), u, x, f, c, h)
        outs.append((h, c))
    return outs


@pytest.mark.parametrize("x_depth,f_depth", [(12, None), (6, 10)])
def test_median_matches_numpy(x_depth, f_depth):
    d = 12
    cell = MedianReciprocalGatedCell(out_depth=d)
    cell.build((N, H, W, d), inputs_shape=(N, H, W, x_depth),
               feedback_shape=None if f_depth is None else (N, H, W, f_depth))
    w = randomize(cell, seed=17, scale=0.2)
    drives = random_inputs(18, 4, (N, H, W, d))
    xs = random_inputs(19, 4, (N, H, W, x_depth))
    fbs = random_inputs(20, 4, (N, H, W, f_depth)) if f_depth else [None] * 4
    outs, states = unroll(cell, drives, xs, None if f_depth is None else fbs)
    for t, (h, c) in enumerate(numpy_median(w, drives, xs, fbs, d)):
        assert_close(outs[t], h, what=f"h t={t}")
        assert_close(states[t][0], c, what=f"c t={t}")


@pytest.mark.parametrize("d,x,f,expected", [
    (128, 128, 0, 384_064 - 147_584),        # conv4 of rgc_intermediate (spec §6.4)
    (128, 128, 256, 416_960 - 147_584),      # conv5, feedback from conv8
    (256, 128, 768, 1_314_880 - 295_168),    # conv6: projection + feedback
    (512, 256, 512, 4_454_208 - 1_180_160),  # conv9
])
def test_median_param_count(d, x, f, expected):
    cell = MedianReciprocalGatedCell(out_depth=d)
    cell.build((1, 2, 2, d), inputs_shape=(1, 2, 2, x),
               feedback_shape=(1, 2, 2, f) if f else None)
    closed_form = 10 * d * d + 485 * d + 10_560 + (x * d if x != d else 0) + \
        (f * d + d if f else 0)
    assert cell.count_params() == closed_form == expected


def test_median_config_is_the_spec():
    assert MEDIAN_CONFIG["cell_depth"] == 64
    assert MEDIAN_CONFIG["ff_filter_size"] == 2 and MEDIAN_CONFIG["in_out_filter_size"] == 3
    cell = MedianReciprocalGatedCell(out_depth=8)
    cell.build((1, 3, 3, 8), inputs_shape=(1, 3, 3, 8))
    assert cell.convs["cell_tau"].depthwise_kernel.shape == (7, 7, 64, 1)
    assert cell.convs["input_to_cell"].kernel.shape == (2, 2, 8, 64)
