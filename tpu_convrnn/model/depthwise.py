"""Depthwise convolution (stride 1, TF ``SAME``) with a choice of how it and its gradients run.

XLA expresses the kernel gradient of a depthwise convolution as a convolution with
``batch_group_count = C``. On CPU it rewrites that into a *dense* C x C convolution whose
off-diagonal blocks are masked away afterwards (``ConvolutionGroupConverter``): C times the work
(XLA's own count: 2.26 GFLOP where the depthwise work is 0.06, bench/RESULTS.md). On an H100 the
native op (a cuDNN call) was the fastest of native, taps and rows below, so the choice matters
for JAX on CPU.

``depthwise_conv_same(x, kernel, method)``:

* ``"native"``: plain ``keras.ops.depthwise_conv`` and automatic differentiation;
* ``"taps"``: the forward pass and the input gradient as depthwise convolutions; the kernel
  gradient as one reduction over the ``k_h * k_w`` shifted copies of the padded input times the
  upstream gradient, ``dK[i, j, c] = sum_{n,h,w} x_pad[n, h+i, w+j, c] g[n, h, w, c]``
  (the depthwise work, as one reduction over shifted reads);
* ``"rows"``: as ``"taps"``, but the kernel gradient as one batched matrix product over
  channels per kernel row, ``R[c, x, w] = sum_{n,h} x_pad[n, h+i, x, c] g[n, h, w, c]``, whose
  diagonals ``x = w + j`` are the kernel row's gradient (``W_pad / k_w`` times the depthwise
  work, on the matrix units);
* ``"shifts"``: no convolution op at all: the forward pass and the input gradient as sums over
  the ``k_h * k_w`` shifted copies times the kernel taps,
  ``y[n, h, w, c] = sum_{i,j} x_pad[n, h+i, w+j, c] K[i, j, c]`` (accumulated in float32; one
  elementwise kernel that XLA fuses, reading the input from cache), the kernel gradient as in
  ``"rows"``. A depthwise convolution does 2 FLOPs per loaded value per tap, so it is bound by
  memory traffic, which one fused kernel can keep near one read of each tensor (not yet
  measured on a GPU); ``"rows"`` and ``"shifts"`` differ only in the forward pass and the input
  gradient. The whole training step takes longer to compile (4.8x on CPU, bench/RESULTS.md).

All give the same values (tested against ``"native"`` on both backends). Written with
``keras.ops`` only.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tpu_convrnn.model import execution
from tpu_convrnn.model.tf1_ops import same_padding

METHODS = execution.DEPTHWISE_METHODS[1:]


def _pads(shape, kernel_shape):
    return [same_padding(int(shape[1]), int(kernel_shape[0])),
            same_padding(int(shape[2]), int(kernel_shape[1]))]


def _pad(x, pads):
    return ops.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])


def _valid(xp, kernel, shifts):
    """VALID depthwise conv of the padded ``xp``: the backend's op, or (``shifts``) a sum over
    the shifted copies of ``xp`` times the kernel taps, accumulated in float32."""
    if not shifts:
        return ops.depthwise_conv(xp, kernel, strides=1, padding="valid")
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    h, w = int(xp.shape[1]) - kh + 1, int(xp.shape[2]) - kw + 1
    taps = ops.cast(kernel[..., 0], "float32")  # [kh, kw, C]
    x32 = ops.cast(xp, "float32")
    y = None
    for i in range(kh):
        for j in range(kw):
            term = x32[:, i:i + h, j:j + w, :] * taps[i, j]
            y = term if y is None else y + term
    return ops.cast(y, xp.dtype)


def _input_grad(g, kernel, pads, shifts=False):
    """dx of a SAME depthwise conv: a VALID depthwise conv of g, padded the other way round,
    with the kernel flipped."""
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    back = [(kh - 1 - pads[0][0], kh - 1 - pads[0][1]), (kw - 1 - pads[1][0], kw - 1 - pads[1][1])]
    flipped = ops.flip(ops.flip(kernel, axis=0), axis=1)
    return _valid(_pad(g, back), flipped, shifts)


def _kernel_grad_taps(xp, g, kh, kw):
    h, w = int(g.shape[1]), int(g.shape[2])
    g32 = ops.cast(g, "float32")
    taps = ops.stack([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=0)
    dk = ops.sum(ops.cast(taps, "float32") * g32[None], axis=(1, 2, 3))  # [kh * kw, C]
    return ops.reshape(dk, (kh, kw, int(g.shape[-1]), 1))


def _diagonal_selector(wp, w, kw):
    """S[x, w, j] = 1 where x == w + j."""
    s = np.zeros((wp, w, kw), np.float32)
    for j in range(kw):
        s[np.arange(w) + j, np.arange(w), j] = 1.0
    return s


def _kernel_grad_rows(xp, g, kh, kw):
    h, w, wp = int(g.shape[1]), int(g.shape[2]), int(xp.shape[2])
    rows = ops.stack([xp[:, i:i + h] for i in range(kh)], axis=1)  # [N, kh, H, Wp, C]
    r = ops.einsum("nihxc,nhwc->cixw", rows, g)
    sel = ops.convert_to_tensor(_diagonal_selector(wp, w, kw), dtype="float32")
    dk = ops.einsum("cixw,xwj->ijc", ops.cast(r, "float32"), sel)
    return dk[..., None]


_KERNEL_GRADS = {"taps": _kernel_grad_taps, "rows": _kernel_grad_rows,
                 "shifts": _kernel_grad_rows}


def depthwise_conv_same(x, kernel, method: str = "taps"):
    """Depthwise conv of NHWC ``x`` with ``kernel`` [k_h, k_w, C, 1], stride 1, TF SAME padding
    (even kernels pad bottom/right). ``method`` chooses how the convolution and its gradients
    are computed (see the module docstring); the values are the same."""
    if method not in METHODS:
        raise ValueError(f"depthwise method {method!r}: expected one of {', '.join(METHODS)}")
    if int(kernel.shape[-1]) != 1:
        raise ValueError(f"depthwise kernel {tuple(kernel.shape)}: only channel multiplier 1")
    if method == "native":
        return ops.depthwise_conv(x, kernel, strides=1, padding="same")
    pads = _pads(x.shape, kernel.shape)
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    kernel_grad = _KERNEL_GRADS[method]
    shifts = method == "shifts"

    @ops.custom_gradient
    def conv(x, kernel):
        y = _valid(_pad(x, pads), kernel, shifts)

        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            dx = _input_grad(g, kernel, pads, shifts)
            dk = kernel_grad(_pad(x, pads), g, kh, kw)
            return dx, ops.cast(dk, kernel.dtype)
        return y, grad

    # A variable passed in must be read outside: TF's custom_gradient rejects variable reads.
    return conv(x, ops.cast(kernel, kernel.dtype))


def resolve_method(method: str | None = None) -> str:
    """The method to run: ``method``, by default the execution setting ``depthwise``.
    ``"auto"``: ``"rows"`` under Keras' JAX backend on CPU, where XLA rewrites the native
    kernel gradient into the dense convolution; ``"native"`` elsewhere (XLA on GPU keeps it a
    cuDNN depthwise convolution, the fastest of native, taps and rows on an H100:
    bench/RESULTS.md; ``"shifts"`` is not measured on a GPU yet)."""
    if method is None:
        method = execution.current().depthwise
    if method == "auto":
        if keras.backend.backend() == "jax":
            import jax
            if jax.default_backend() == "cpu":
                return "rows"
        return "native"
    if method not in METHODS:
        raise ValueError(f"depthwise method {method!r}: expected 'auto' or one of "
                         f"{', '.join(METHODS)}")
    return method


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class SeparableConv2D(keras.layers.SeparableConv2D):
    """``keras.layers.SeparableConv2D`` (same weights, names and values; stride 1, SAME,
    multiplier 1) whose depthwise part is ``depthwise_conv_same`` with the method of the
    execution setting ``depthwise``, read when the layer is called."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding != "same" or tuple(self.strides) != (1, 1) or \
                self.depth_multiplier != 1 or tuple(self.dilation_rate) != (1, 1) or \
                self.data_format != "channels_last":
            raise ValueError(
                f"SeparableConv2D layer '{self.name}': only stride 1, SAME padding, depth "
                f"multiplier 1, no dilation, channels_last; got strides {self.strides}, padding "
                f"{self.padding!r}, depth_multiplier {self.depth_multiplier}, dilation_rate "
                f"{self.dilation_rate}, data_format {self.data_format!r}")

    def call(self, inputs):
        y = depthwise_conv_same(inputs, self.depthwise_kernel, resolve_method())
        y = ops.conv(y, self.pointwise_kernel, strides=1, padding="valid")
        if self.use_bias:
            y = ops.add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

