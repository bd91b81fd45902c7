"""Training-step throughput, FLOPs and MFU of a ConvRNN, with baselines in the same process.

    python bench/train_step.py --model=rgc_intermediate --image_size=224 --batch=32 \
        --precision=bf16 [--resnet50_batch=128] [--baseline=rgc_intermediate_scaffold]
    KERAS_BACKEND=jax python bench/train_step.py ...        # GPU (no TensorFlow needed)

One training step = forward over all T steps, softmax cross-entropy on the readout, backward,
SGD-momentum update, compiled with XLA (``jax.jit`` on JAX; ``tf.function(jit_compile=...)``
on TensorFlow, default off on CPU where XLA is slower). Synthetic data, no input pipeline.

Reported per model: time to import, build and count FLOPs; compile time (JAX: tracing and
lowering apart from XLA's compile, which includes convolution autotuning on GPU); first-step
time (after compile: the runtime's own first-execution work, e.g. building cuDNN plans);
median images/s over ``--repeats`` timed runs of ``--steps`` steps after warm-up, model FLOPs
per training image (3x the forward FLOPs that can reach the loss, counted from the model's own
layer shapes by ``tpu_convrnn.flops``; work that cannot reach the loss is not counted), achieved
FLOP/s, MFU when the device's dense bf16 peak is known, and peak memory.
``recurrence_overhead`` = baseline achieved FLOP/s / ConvRNN achieved FLOP/s.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import time

PROCESS_START = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tpu_convrnn  # noqa: E402
from tpu_convrnn.depthwise import resolve_method  # noqa: E402
from tpu_convrnn.flops import count_call_flops, count_flops, xla_cost_flops  # noqa: E402

# Dense bf16 peaks (FLOP/s): NVIDIA H100/H200 SXM datasheets; Cloud TPU system architecture.
PEAKS = {"H100": 989e12, "H200": 989e12, "TPU v4": 275e12, "TPU v5 lite": 197e12,
         "TPU v5e": 197e12, "TPU v5p": 459e12}


def device_info():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        d = jax.devices()[0]
        return backend, d.device_kind, d
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    return backend, ("GPU " + gpus[0].name) if gpus else "CPU", None


def peak_for(kind):
    for k, v in PEAKS.items():
        if k.lower() in kind.lower():
            return v
    return None


def make_step(model, lr=1e-3, xla=True):
    """Returns (run(x, y) -> loss (blocking), compile(x, y) -> memory analysis or None) for one
    training step: SGD with Nesterov momentum and the ImageNet recipe's gradient clipping
    (gin/recipes/imagenet.gin), so that the loss stays finite from the default initialisation."""
    opt = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, clipvalue=0.3237)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if keras.backend.backend() == "jax":
        import jax

        def loss_and_state(tv, ntv, x, y):
            logits, ntv = model.stateless_call(tv, ntv, x, training=True)
            return loss_fn(y, keras.ops.cast(logits, "float32")), ntv

        @jax.jit
        def step(tv, ntv, ov, x, y):
            (loss, ntv), grads = jax.value_and_grad(loss_and_state, has_aux=True)(tv, ntv, x, y)
            tv, ov = opt.stateless_apply(ov, grads, tv)
            return tv, ntv, ov, loss

        state = [[v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables],
                 [v.value for v in opt.variables]]

        compiled = {}

        def run(x, y):
            fn = compiled.get("fn") or step
            tv, ntv, ov, loss = fn(*state, x, y)
            state[:] = [tv, ntv, ov]
            return float(jax.block_until_ready(loss))

        def do_compile(x, y):
            t0 = time.perf_counter()
            lowered = step.lower(*state, x, y)
            trace_s = time.perf_counter() - t0
            compiled["fn"] = lowered.compile()
            counts = hlo_op_counts(compiled["fn"].as_text())
            return compiled["fn"].memory_analysis(), {**counts, "trace_s": trace_s}
        return run, do_compile

    import tensorflow as tf

    @tf.function(jit_compile=xla)
    def tf_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def do_compile(x, y):
        tf_step.get_concrete_function(tf.TensorSpec(x.shape, x.dtype),
                                      tf.TensorSpec(y.shape, y.dtype))
        return None, None
    return (lambda x, y: float(tf_step(x, y))), do_compile


def hlo_op_counts(text):
    """Convolutions (XLA ``convolution`` or cuDNN custom calls) and fusions (kernels XLA
    generates) in an optimized HLO module: each is at least one launch per step."""
    convs = len(re.findall(r"= \S+ convolution\(", text)) + \
        len(re.findall(r'custom_call_target="__cudnn\$conv', text))
    return {"convolutions": convs, "fusions": len(re.findall(r"= \S+ fusion\(", text))}


def peak_memory():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"], "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host max RSS"


def measure(name, model, batch, size, train_flops, args, peak):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
    y = rng.integers(0, 1000, (batch,)).astype("int32")
    run, do_compile = make_step(model, xla=args.xla)
    t0 = time.perf_counter()
    mem, counts = do_compile(x, y)
    compile_s = time.perf_counter() - t0
    if mem is not None:
        print(f"{name:28s} batch {batch:4d}  compiled step: arguments "
              f"{mem.argument_size_in_bytes / 2**30:.2f} GiB, outputs "
              f"{mem.output_size_in_bytes / 2**30:.2f} GiB, temporaries "
              f"{mem.temp_size_in_bytes / 2**30:.2f} GiB (XLA buffer assignment); "
              f"{counts['convolutions']} convolutions, {counts['fusions']} fusions"
              f"{', remat' if args.remat else ''}  compile {compile_s:.1f} s (trace and lower "
              f"{counts['trace_s']:.1f} s, XLA {compile_s - counts['trace_s']:.1f} s)", flush=True)
    if args.compile_only:
        return None
    t0 = time.perf_counter()
    loss = run(x, y)
    first_s = time.perf_counter() - t0
    print(f"{name:28s} first step done {time.perf_counter() - PROCESS_START:.1f} s after the "
          "process started (imports, model build, tracing, compile, first step)", flush=True)
    for _ in range(args.warmup):
        run(x, y)
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = run(x, y)
        rates.append(batch * args.steps / (time.perf_counter() - t0))
    ips = float(np.median(rates))
    achieved = ips * train_flops
    mem, mem_kind = peak_memory()
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (peak unknown)"
    print(f"{name:28s} batch {batch:4d}  {ips:9.1f} images/s  compile {compile_s:6.1f} s  "
          f"first step {first_s:6.1f} s  {train_flops / 1e9:7.1f} GFLOP/img  "
          f"{achieved / 1e12:7.2f} TFLOP/s  MFU {mfu}  {mem_kind} {mem / 2**30:.2f} GiB  "
          f"loss {loss:.3f}", flush=True)
    return achieved


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="rgc_intermediate")
    p.add_argument("--baseline", default="rgc_intermediate_scaffold",
                   help="feedforward baseline model name ('' to skip)")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--batch", type=lambda v: [int(b) for b in v.split(",")], default=[32],
                   help="batch size, or several separated by commas (measured in turn)")
    p.add_argument("--baseline_batch", type=int, default=0, help="default: 4x --batch")
    p.add_argument("--resnet50_batch", type=int, default=0, help="0 skips ResNet-50")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--times", type=int, default=0, help="override T (0: the model's)")
    p.add_argument("--remat", action="store_true", help="recompute each node step in backward")
    p.add_argument("--depthwise", default="auto",
                   help="how the depthwise convs are computed (tpu_convrnn.depthwise methods)")
    p.add_argument("--fuse_convs", action=argparse.BooleanOptionalAction, default=False,
                   help="run a cell's convs of one tensor as one convolution (shared_input)")
    p.add_argument("--compile_cache", default="",
                   help="JAX: persistent compilation cache directory (a second run reuses the "
                   "compiled step, autotuning included)")
    p.add_argument("--compile_only", action="store_true",
                   help="compile and print the step's memory analysis (JAX) without running")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="TF backend: jit_compile (default: on for GPU, off on CPU)")
    p.add_argument("--xla_cost", action="store_true",
                   help="JAX backend on CPU: print XLA's cost-analysis FLOPs of the forward "
                   "beside the count (on GPU XLA misses cuDNN convolutions)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    if args.compile_cache:
        import jax
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    backend, kind, _ = device_info()
    if args.xla is None:
        args.xla = kind != "CPU"
    peak = peak_for(kind)
    dtype = "mixed_bfloat16" if args.precision == "bf16" else "float32"
    print(f"backend {backend}, keras {keras.__version__}, device {kind}, precision "
          f"{args.precision}, image {args.image_size} px, XLA "
          f"{'on' if backend == 'jax' or args.xla else 'off'}"
          f"{', remat' if args.remat else ''}, depthwise method "
          f"{resolve_method(args.depthwise)}, "
          f"{'fused' if args.fuse_convs else 'separate'} convs per cell tensor", flush=True)
    extra = {"times": args.times} if args.times else {}
    t0 = time.perf_counter()
    model = tpu_convrnn.build_model(args.model, image_size=args.image_size, dtype=dtype,
                                    remat=args.remat, depthwise=args.depthwise,
                                    fuse_convs=args.fuse_convs, **extra)
    t1 = time.perf_counter()
    flops = count_flops(model)
    print(f"{args.model}: T={model.times}, forward {flops['forward_executed'] / 1e9:.1f} "
          f"GFLOP/img executed, {flops['forward_to_loss'] / 1e9:.1f} reach the loss; "
          f"training step counted as 3x the latter (imports {t0 - PROCESS_START:.1f} s, model "
          f"build {t1 - t0:.1f} s, FLOP count {time.perf_counter() - t1:.1f} s)", flush=True)
    if args.xla_cost:
        xla = xla_cost_flops(model)
        print(f"XLA cost analysis of the forward: {xla / 1e9:.2f} GFLOP/img = "
              f"{xla / flops['forward_to_loss']:.3f} x the counted loss-reaching forward (XLA "
              "adds elementwise ops and leaves out taps on SAME padding)", flush=True)
    ours = None
    for batch in args.batch:  # the first batch size is the one the baselines are compared with
        achieved = measure(args.model, model, batch, args.image_size, flops["train_step"],
                           args, peak)
        ours = ours or achieved
    if args.compile_only:
        return
    if args.baseline:
        base = tpu_convrnn.build_model(args.baseline, image_size=args.image_size, dtype=dtype,
                                       **extra)
        base_achieved = measure(args.baseline, base, args.baseline_batch or 4 * args.batch[0],
                                args.image_size, count_flops(base)["train_step"], args, peak)
        print(f"recurrence_overhead = {base_achieved / ours:.2f} "
              f"(baseline achieved FLOP/s / {args.model} achieved FLOP/s)")
    if args.resnet50_batch:
        keras.config.set_dtype_policy(dtype)
        r50 = keras.applications.ResNet50(weights=None, input_shape=(args.image_size,) * 2 + (3,),
                                          classifier_activation=None)
        keras.config.set_dtype_policy("float32")
        f = 3 * count_call_flops(r50, np.zeros((1, args.image_size, args.image_size, 3),
                                               "float32"))
        r50_achieved = measure("ResNet50", ScaledInput(r50), args.resnet50_batch, args.image_size,
                               f, args, peak)
        print(f"MFU ratio {args.model} / ResNet50 = {ours / r50_achieved:.2f}")


class ScaledInput(keras.Model):
    """ResNet-50 taking uint8 images like the ConvRNN (scaled to [0, 1])."""

    def __init__(self, inner):
        super().__init__(dtype=inner.dtype_policy, name="resnet50_uint8")
        self.inner = inner
        self.built = True  # the inner application is built already

    def call(self, x, training=False):
        return self.inner(keras.ops.cast(x, "float32") / 255.0, training=training)


if __name__ == "__main__":
    main()
