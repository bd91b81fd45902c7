"""Independent NumPy implementations of the spec's equations (convrnn_spec.md §2, §4).

Written from the spec, not from the package: the tests compare the Keras layers against these.
All arithmetic is float64; inputs/weights are whatever arrays the tests pass.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def relu(x):
    return np.maximum(x, 0)


ACT = {"identity": lambda x: x, "elu": elu, "sigmoid": sigmoid, "tanh": np.tanh, "relu": relu}


def same_pad(n, k, s=1):
    """TF 'SAME': pad_before = floor(total / 2), the rest after (spec §2)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv2d(x, w, b=None, stride=1, padding="SAME"):
    """NHWC x [N,H,W,I], HWIO kernel w [kh,kw,I,O], direct sum over kernel taps."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    kh, kw = w.shape[:2]
    n, h, wd, _ = x.shape
    if padding == "SAME":
        ph, pw = same_pad(h, kh, stride), same_pad(wd, kw, stride)
        x = np.pad(x, ((0, 0), ph, pw, (0, 0)))
        oh, ow = -(-h // stride), -(-wd // stride)
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride, :]
            out += patch @ w[dy, dx]
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def depthwise(x, dw):
    """Depthwise k_h x k_w conv (multiplier 1, SAME), direct sum over kernel taps."""
    x = np.asarray(x, np.float64)
    kh, kw = dw.shape[:2]
    n, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), same_pad(h, kh), same_pad(wd, kw), (0, 0)))
    out = np.zeros_like(x)
    for dy in range(kh):
        for dx in range(kw):
            out += xp[:, dy:dy + h, dx:dx + wd, :] * dw[dy, dx, :, 0]
    return out


def depthwise_separable(x, dw, pw, b=None):
    """Depthwise k x k (multiplier 1, SAME) then pointwise 1x1, plus bias."""
    return conv2d(depthwise(x, dw), pw, b)


def layer_norm_hwc(x, gamma, beta, eps=1e-12):
    """contrib layer_norm: moments over H, W, C per example; per-channel gain and shift."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def resize_bilinear_aligned(x, size):
    """align_corners=True bilinear: output i reads source i * (in - 1) / (out - 1)."""
    x = np.asarray(x, np.float64)

    def axis_coords(n_in, n_out):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        lo = np.clip(np.floor(src).astype(int), 0, n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    ylo, yhi, fy = axis_coords(x.shape[1], size[0])
    xlo, xhi, fx = axis_coords(x.shape[2], size[1])
    top = x[:, ylo][:, :, xlo] * (1 - fx)[None, None, :, None] + \
        x[:, ylo][:, :, xhi] * fx[None, None, :, None]
    bot = x[:, yhi][:, :, xlo] * (1 - fx)[None, None, :, None] + \
        x[:, yhi][:, :, xhi] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


def max_pool_same(x, k=2, s=2):
    """Max-pool k x k / s, TF 'SAME' (padding with -inf at bottom/right)."""
    n, h, w, c = x.shape
    ph, pw = same_pad(h, k, s), same_pad(w, k, s)
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), ph, pw, (0, 0)), constant_values=-np.inf)
    oh, ow = -(-h // s), -(-w // s)
    out = np.full((n, oh, ow, c), -np.inf)
    for dy in range(k):
        for dx in range(k):
            out = np.maximum(out, xp[:, dy:dy + s * oh:s, dx:dx + s * ow:s, :])
    return out


def median_rgc_step(w, u, x, f, c, h):
    """One step of the "median" reciprocal gated cell (spec §4.8).

    ``w(suffix)`` returns the weight whose Keras path ends with ``suffix`` (sublayers
    input_to_cell, cell_tau, cell_gate, input_to_out, out_tau, out_gate, residual_add, feedback).
    Returns (h_t, c_t).
    """
    a_t, a_g = 0.9219348064291611, 0.7006566684988862

    def ds(name, t):
        return depthwise_separable(t, w(f"/{name}/depthwise_kernel"),
                                   w(f"/{name}/pointwise_kernel"), w(f"/{name}/bias"))

    ut = elu(u)
    c_in = conv2d(ut, w("/input_to_cell/kernel"), w("/input_to_cell/bias"))
    c_new = elu(a_t * (1 - sigmoid(ds("cell_tau", c))) * c
                + a_g * (1 - np.tanh(ds("cell_gate", h))) * c_in)
    res = x if x.shape[-1] == h.shape[-1] else conv2d(x, w("/residual_add/kernel"))
    h_in = conv2d(ut, w("/input_to_out/kernel"), w("/input_to_out/bias")) + res
    if f is not None:
        h_in = h_in + conv2d(f, w("/feedback/kernel"), w("/feedback/bias"))
    h_new = elu(a_t * (1 - sigmoid(ds("out_tau", h))) * h
                + a_g * (1 - np.tanh(ds("out_gate", c))) * h_in)
    return h_new, c_new
