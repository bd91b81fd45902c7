"""Depthwise 7x7 convolution, forward + backward, per method of tpu_convrnn.model.depthwise (JAX).

    KERAS_BACKEND=jax python bench/depthwise.py [--batch=32] [--dtype=bfloat16]

For the depthwise shapes of rgc_intermediate's median cells at 224 px (conv4's out and cell
states, conv6, conv7, conv9), times ``loss = sum(depthwise_conv_same(x, k) * r)`` with its
gradients for x and k, for every method of ``tpu_convrnn.model.depthwise``: compile time, first call,
median of ``--repeats`` timed calls, and the median of the forward pass alone. Also prints XLA's FLOP count of the compiled step (it shows
the dense C x C rewrite of the native kernel gradient) and the depthwise work itself
(3 x 2 x N x H x W x C x 49). Last line: the method with the least total time.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from tpu_convrnn.model.depthwise import METHODS, depthwise_conv_same  # noqa: E402
from tpu_convrnn.tools.flops import compiled_flops  # noqa: E402

# (name, H = W, channels) of the 7x7 depthwise convs in rgc_intermediate at 224 px
SHAPES = [("conv4 h", 56, 128), ("conv4 c", 56, 64), ("conv6 h", 28, 256),
          ("conv7 h", 14, 256), ("conv9 h", 7, 512)]


def step_fn(method):
    def loss(x, k, r):
        return ops.sum(ops.cast(depthwise_conv_same(x, k, method), "float32") * r)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def _median_time(compiled, args, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_method(method, x, k, r, repeats):
    """(median s of forward + gradients, compile s, first call s, XLA FLOPs, outputs, median s
    of the forward alone)."""
    fn = step_fn(method)
    t0 = time.perf_counter()
    compiled = fn.lower(x, k, r).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(x, k, r))
    first_s = time.perf_counter() - t0
    t = _median_time(compiled, (x, k, r), repeats)
    forward = jax.jit(lambda x, k: depthwise_conv_same(x, k, method)).lower(x, k).compile()
    jax.block_until_ready(forward(x, k))
    forward_s = _median_time(forward, (x, k), repeats)
    return t, compile_s, first_s, compiled_flops(compiled, 0.0), out, forward_s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--scale", type=float, default=1.0, help="spatial scale of the shapes (CPU)")
    args = p.parse_args()
    methods = args.methods.split(",")
    print(f"jax {jax.__version__}, device {jax.devices()[0].device_kind}, batch {args.batch}, "
          f"{args.dtype}, 7x7 kernels", flush=True)
    rng = np.random.default_rng(0)
    totals = {m: 0.0 for m in methods}
    for name, hw, c in SHAPES:
        hw = max(7, int(round(hw * args.scale)))
        x = jax.numpy.asarray(rng.normal(size=(args.batch, hw, hw, c)), args.dtype)
        k = jax.numpy.asarray(rng.normal(size=(7, 7, c, 1)) * 0.1, args.dtype)
        r = jax.numpy.asarray(rng.normal(size=(args.batch, hw, hw, c)), "float32")
        useful = 3 * 2 * args.batch * hw * hw * c * 49
        ref = None
        for m in methods:
            try:
                t, comp, first, flops, out, fwd = time_method(m, x, k, r, args.repeats)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name:8s} {hw:3d}x{hw:<3d} x {c:4d}  {m:7s} failed: {e!r}"[:300])
                totals[m] = float("inf")
                continue
            gk = np.asarray(out[1][1], np.float32)
            if ref is None:
                ref = gk
            err = float(np.linalg.norm(gk - ref) / np.linalg.norm(ref))
            totals[m] += t
            print(f"{name:8s} {hw:3d}x{hw:<3d} x {c:4d}  {m:7s} {t * 1e3:8.3f} ms (forward "
                  f"{fwd * 1e3:7.3f})  compile "
                  f"{comp:5.1f} s  first {first * 1e3:8.1f} ms  XLA {flops / 1e9:8.2f} GFLOP "
                  f"(depthwise work {useful / 1e9:.2f})  dK rel. diff {err:.1e}", flush=True)
    for m in methods:
        print(f"total {m:7s} {totals[m] * 1e3:8.3f} ms")
    best = min(totals, key=totals.get)
    print(f"best {best}")


if __name__ == "__main__":
    main()
