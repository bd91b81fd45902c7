"""Model FLOPs of an unrolled ConvRNN, counted from its own layers' shapes.

Every convolution and dense layer is counted at the input shape it was built with (Keras
records it; a ConvRNN builds all its layers when it is made), and nothing is run or patched:
conv ``2 * H_out * W_out * k_h * k_w * C_in * C_out``, depthwise ``2 * H * W * k_h * k_w * C``,
separable = depthwise + pointwise, dense ``2 * K * N`` per example. Each such layer of a node
runs once per step of the node. Elementwise work (activations, gates, pools, the harbor's
resize) is not counted, as usual for MFU. The count is that of the layers' own kernels,
however an execution setting computes them (depthwise by shifts, convs fused).

Over the unroll every node could run at every step, but only part of that work can reach the
readout window ``[start, T)``: node ``n`` at step ``t`` feeds its targets at ``t + 1`` and, if it
has a cell, itself at ``t + 1``. ``count_flops`` counts the node-steps of the unroll's plan
(``tpu_convrnn.model.unroll_plan``, which walks this time-unrolled graph back from the readout steps)
densely and after work elimination, beside the count of every node at every step; a training
step is taken as 3x the forward FLOPs.
"""
from __future__ import annotations

import keras
import numpy as np

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
          keras.layers.DepthwiseConv2D)


def layer_flops(layer) -> int:
    """Forward FLOPs per example of one conv or dense layer at the input shape it was built
    with (or the layer's own ``flops_per_example()``); 0 for other layers and for layers not
    built."""
    if hasattr(layer, "flops_per_example"):
        return int(layer.flops_per_example()) if layer.built else 0
    shapes = list((getattr(layer, "_build_shapes_dict", None) or {}).values())
    if not shapes or shapes[0] is None:
        return 0
    in_shape = tuple(shapes[0])

    def out_pixels():
        return int(np.prod(layer.compute_output_shape(in_shape)[1:-1]))
    if isinstance(layer, keras.layers.SeparableConv2D):
        return 2 * out_pixels() * (int(np.prod(layer.depthwise_kernel.shape)) +
                                   int(np.prod(layer.pointwise_kernel.shape)))
    if isinstance(layer, _CONVS):
        return 2 * out_pixels() * int(np.prod(layer.kernel.shape))
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(np.prod(in_shape[1:-1])) * int(np.prod(layer.kernel.shape))
    return 0


def keras_model_flops(model) -> int:
    """Forward FLOPs per example of a built Keras model whose layers each run once (e.g. a
    Keras application): the sum of ``layer_flops`` over all its layers."""
    return sum(layer_flops(layer) for layer in model._flatten_layers())


def node_flops(model) -> dict:
    """Forward FLOPs of one step of each node, per image."""
    return {n: keras_model_flops(model.graph_nodes[n]) for n in model.node_names}


def reaching_steps(model) -> dict:
    """{node: set of steps t whose output can reach the readout window}: the node-steps of the
    dense unroll's plan (``tpu_convrnn.model.unroll_plan``, which computes only those)."""
    reach = {n: set() for n in model.node_names}
    for s in model.plan(eliminate=False).computed():
        reach[s.node].add(s.t)
    return reach


def count_flops(model, batch: int | None = None) -> dict:
    """Per-image FLOPs: ``forward_executed`` (every node at every step, the readout in its
    window), ``forward_to_loss`` (only work that can reach the readout window),
    ``train_step`` (3 x forward_to_loss), and ``per_node_step``.

    After work elimination (the execution setting ``eliminate``) the loss-reaching node-steps
    that run are split into ``forward_image_dependent`` (per image) and
    ``forward_once_per_batch`` (batch-invariant node-steps, run once per batch); with ``batch``
    also ``forward_eliminated`` = image-dependent + once-per-batch / batch per image and
    ``train_step_eliminated`` (3x that)."""
    per = node_flops(model)
    start, stop = model.window
    executed = sum(per[n] * (stop - start if n == model.readout_name else model.times)
                   for n in model.node_names)
    reaching = sum(per[s.node] for s in model.plan(eliminate=False).computed())
    shared = model.plan(eliminate=True).computed()
    out = {"forward_executed": executed, "forward_to_loss": reaching,
           "train_step": 3 * reaching, "per_node_step": per,
           "forward_image_dependent": sum(per[s.node] for s in shared if s.varies),
           "forward_once_per_batch": sum(per[s.node] for s in shared if not s.varies)}
    if batch:
        out["forward_eliminated"] = out["forward_image_dependent"] + \
            out["forward_once_per_batch"] / batch
        out["train_step_eliminated"] = 3 * out["forward_eliminated"]
    return out


def xla_cost_flops(model, batch: int = 1) -> float:
    """XLA's own FLOP count (``cost_analysis``) of one compiled forward pass, under Keras' JAX
    backend on the current device: a cross-check of ``count_flops``. XLA counts only the work
    that reaches the output (like ``forward_to_loss``), adds elementwise ops, and leaves out
    kernel taps that fall on SAME padding, so it agrees with the dense count for VALID
    convolutions and is lower for SAME ones."""
    if keras.backend.backend() != "jax":
        raise ValueError("xla_cost_flops needs KERAS_BACKEND=jax")
    import jax
    import jax.numpy as jnp
    x = jnp.zeros((batch, model.image_size, model.image_size, 3), "float32")
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    return compiled_flops(
        jax.jit(lambda t, x: model.stateless_call(t, ntv, x)[0]).lower(tv, x).compile())


def compiled_flops(compiled, default: float | None = None) -> float:
    """The FLOPs of XLA's cost analysis of a compiled JAX computation; where it has none,
    ``default``, or a KeyError if that is None."""
    cost = compiled.cost_analysis()
    cost = (cost[0] if isinstance(cost, list) else cost) or {}
    if "flops" not in cost and default is not None:
        return float(default)
    return float(cost["flops"])
