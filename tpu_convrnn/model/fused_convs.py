"""Several stride-1 SAME convolutions of one input, run as one.

A reciprocal gated cell convolves each of its tensors several times per step: the drive ``u``
with the input->cell and input->out kernels, the cell state ``c`` with its own τ kernel and the
out gate's, the out state ``h`` with its τ kernel and the cell gate's. Over a T-step unroll every
one of those is a separate convolution (3,119 in rgc_intermediate's training step), and on GPU
each has a fixed cost per launch and per first execution. ``apply_shared(x, layers)`` runs

* full convolutions (``keras.layers.Conv2D``) as one convolution whose kernel stacks theirs along
  the output channels, smaller kernels zero-padded to the largest size where TF's SAME padding
  puts them (a 2x2 kernel sits at rows/columns 1-2 of a 3x3: SAME pads a 2x2 at the end only);
* depth-separable ones (``tpu_convrnn.model.depthwise.SeparableConv2D``, when the execution setting
  ``depthwise`` resolves to the native op)
  as one depthwise convolution with channel multiplier ``len(layers)`` (kernels embedded the
  same way), then each layer's own pointwise kernel and bias.

The sublayers keep their weights (names, shapes, regularizers); only the arithmetic is grouped.
Values equal those of calling the layers one by one up to float rounding (tested). Anything else
(one layer, other layer kinds, activations, other strides or paddings) is called as it is.
"""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model import depthwise


def _embed(kernel, size):
    """Zero-pads a [kh, kw, ...] kernel to ``size`` = (KH, KW) so that a SAME convolution with
    it equals the SAME convolution with the original (pads (k-1)//2 before, the rest after)."""
    pads = []
    for k, big in zip(kernel.shape[:2], size):
        before = (big - 1) // 2 - (int(k) - 1) // 2
        pads.append([before, big - int(k) - before])
    if pads == [[0, 0], [0, 0]]:
        return kernel
    return ops.pad(kernel, pads + [[0, 0]] * (len(kernel.shape) - 2))


def _plain(layer, cls):
    return type(layer) is cls and layer.activation in (None, keras.activations.linear) and \
        tuple(layer.strides) == (1, 1) and layer.padding == "same" and \
        tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last"


def _size(layers, attr):
    shapes = [getattr(layer, attr).shape for layer in layers]
    return max(int(s[0]) for s in shapes), max(int(s[1]) for s in shapes)


def _bias(layer, y):
    return ops.add(y, layer.bias) if layer.use_bias else y


def _full(x, layers):
    size = _size(layers, "kernel")
    kernel = ops.concatenate([_embed(layer.kernel, size) for layer in layers], axis=-1)
    y = ops.conv(x, kernel, strides=1, padding="same")
    outs, start = [], 0
    for layer in layers:
        outs.append(_bias(layer, y[..., start:start + layer.filters]))
        start += layer.filters
    return outs


def _separable(x, layers):
    size = _size(layers, "depthwise_kernel")
    kernel = ops.concatenate([_embed(layer.depthwise_kernel, size) for layer in layers],
                             axis=-1)  # [KH, KW, C, n]: output channel c * n + j
    y = ops.depthwise_conv(x, kernel, strides=1, padding="same")
    y = ops.reshape(y, (-1, int(x.shape[1]), int(x.shape[2]), int(x.shape[3]), len(layers)))
    return [_bias(layer, ops.conv(y[..., j], layer.pointwise_kernel, strides=1,
                                  padding="valid"))
            for j, layer in enumerate(layers)]


def apply_shared(x, layers):
    """``[layer(x) for layer in layers]``, with groups of two or more plain full convs, and of
    two or more native separable convs, each computed as one convolution."""
    full = [layer for layer in layers if _plain(layer, keras.layers.Conv2D)]
    sep = [layer for layer in layers if _plain(layer, depthwise.SeparableConv2D) and
           depthwise.resolve_method() == "native"]
    out = {}
    for group, fn in ((full, _full), (sep, _separable)):
        if len(group) >= 2:
            out.update(zip(map(id, group), fn(x, group)))
    return [out[id(layer)] if id(layer) in out else layer(x) for layer in layers]
