"""Model FLOPs of an unrolled ConvRNN, counted from its own layers' shapes.

Each node is run once (batch 1, zero inputs) with the convolution and matrix ops counted:
conv ``2 * H_out * W_out * k_h * k_w * C_in * C_out``, depthwise ``2 * H * W * k_h * k_w * C``,
separable = depthwise + pointwise, matmul ``2 * M * K * N``. Elementwise work (activations,
gates, pools, the harbor's resize) is not counted, as usual for MFU.

Over the unroll every node could run at every step, but only part of that work can reach the
readout window ``[start, T)``: node ``n`` at step ``t`` feeds its targets at ``t + 1`` and, if it
has a cell, itself at ``t + 1``. ``count_flops`` counts the node-steps of the unroll's plan
(``tpu_convrnn.unroll_plan``, which walks this time-unrolled graph back from the readout steps)
densely and after work elimination, beside the count of every node at every step; a training
step is taken as 3x the forward FLOPs.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops
from keras.src import ops as src_ops

from tpu_convrnn import execution


@contextlib.contextmanager
def _counting(counter):
    originals = {k: getattr(src_ops, k) for k in ("conv", "depthwise_conv", "separable_conv",
                                                  "matmul")}

    def conv(x, kernel, *a, **kw):
        y = originals["conv"](x, kernel, *a, **kw)
        k = kernel.shape
        counter[0] += 2 * int(np.prod(y.shape[1:3])) * k[0] * k[1] * k[2] * k[3]
        return y

    def depthwise_conv(x, kernel, *a, **kw):
        y = originals["depthwise_conv"](x, kernel, *a, **kw)
        counter[0] += 2 * int(np.prod(y.shape[1:])) * kernel.shape[0] * kernel.shape[1]
        return y

    def separable_conv(x, dk, pk, *a, **kw):
        y = originals["separable_conv"](x, dk, pk, *a, **kw)
        hw = int(np.prod(y.shape[1:3]))
        counter[0] += 2 * hw * dk.shape[0] * dk.shape[1] * dk.shape[2] * dk.shape[3]
        counter[0] += 2 * hw * pk.shape[2] * pk.shape[3]
        return y

    def matmul(a, b):
        y = originals["matmul"](a, b)
        counter[0] += 2 * int(np.prod(a.shape[1:])) * int(b.shape[-1])
        return y

    # Keras layers look the ops up in keras.src.ops, the project's layers in keras.ops.
    for module in (src_ops, ops):
        for k, fn in (("conv", conv), ("depthwise_conv", depthwise_conv),
                      ("separable_conv", separable_conv), ("matmul", matmul)):
            setattr(module, k, fn)
    # Model FLOPs come from each layer's own kernel, whatever runs it: every depthwise conv is
    # counted as the native op ("shifts" has no conv op), and a cell's convs of one tensor one by
    # one (shared_input fuses them into one conv with zero-padded kernels).
    try:
        with execution.settings(depthwise="native", fuse_convs=False):
            yield
    finally:
        for module in (src_ops, ops):
            for k, fn in originals.items():
                setattr(module, k, fn)


def node_flops(model) -> dict:
    """Forward FLOPs of one step of each node, per image. Under the JAX backend the nodes are
    only traced (``jax.eval_shape``): nothing runs or compiles on the device."""
    out = {}
    for n in model.node_names:
        node = model.graph_nodes[n]
        ff = model.ff_source[n]
        x_shape = (1, model.image_size, model.image_size, 3) if ff is None else \
            (1,) + tuple(model.output_shapes[ff][1:])
        o_shapes = [(1,) + tuple(model.output_shapes[s][1:]) for s in model.other_sources[n]]

        def run(node=node, x_shape=x_shape, o_shapes=o_shapes):
            x = ops.zeros(x_shape)
            node(x, [ops.zeros(s) for s in o_shapes], node.get_initial_state(1))
            return x
        counter = [0]
        with _counting(counter):
            if keras.backend.backend() == "jax":
                import jax
                jax.eval_shape(run)
            else:
                run()
        out[n] = counter[0]
    return out


def reaching_steps(model) -> dict:
    """{node: set of steps t whose output can reach the readout window}: the node-steps of the
    dense unroll's plan (``tpu_convrnn.unroll_plan``, which computes only those)."""
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


def count_call_flops(fn, *args) -> int:
    """FLOPs of the conv/matmul ops that ``fn(*args)`` runs (e.g. one forward of a Keras
    application)."""
    counter = [0]
    with _counting(counter):
        fn(*args)
    return counter[0]


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
