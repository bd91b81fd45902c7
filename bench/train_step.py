"""Training-step throughput, FLOPs and MFU of a ConvRNN, with baselines in the same process.

    python bench/train_step.py --model=rgc_intermediate --image_size=224 --batch=32 \
        --precision=bf16 [--resnet50_batch=128] [--baseline=rgc_intermediate_scaffold]
    KERAS_BACKEND=jax python bench/train_step.py ...        # GPU (no TensorFlow needed)

One training step is the library's own (``tpu_convrnn.training.train.Trainer.step_function`` under
TensorFlow: the loss, L2 terms, per-element clipping and SGD-Nesterov update of
gin/recipes/imagenet.gin, at a constant learning rate; under JAX the same loss and clipping from
``tpu_convrnn.training.objective`` under ``jax.jit``), on synthetic data, no input pipeline. Each
ConvRNN is timed with work elimination (the execution setting ``eliminate``) on and off in this
process (``--eliminate``), on one model (the second run continues from the first's weights).

Reported per model: time to import, build and count FLOPs; compile time (JAX: tracing and
lowering apart from XLA's compile, which includes convolution autotuning on GPU); first-step
time (after compile: the runtime's own first-execution work, e.g. building cuDNN plans);
median images/s over ``--repeats`` timed runs of ``--steps`` steps after warm-up, model FLOPs
per training image (3x the forward FLOPs that are executed and reach the loss, counted from the
model's own layer shapes by ``tpu_convrnn.tools.flops``: dense, or after elimination at that batch),
achieved FLOP/s of that executed work, MFU when the device's dense bf16 peak is known, and peak
memory (JAX: XLA's buffer assignment per compiled step; TensorFlow: the host's max RSS so far).
``recurrence_overhead`` = baseline achieved FLOP/s / ConvRNN achieved FLOP/s.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import time

PROCESS_START = time.perf_counter()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tpu_convrnn  # noqa: E402
from tpu_convrnn.model import execution  # noqa: E402
from tpu_convrnn.model.depthwise import resolve_method  # noqa: E402
from tpu_convrnn.tools.flops import count_flops, keras_model_flops, xla_cost_flops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from devices import device_info, hlo_op_counts, peak_for, peak_memory  # noqa: E402

RECIPE = "gin/recipes/imagenet.gin"
RECIPE_KEYS = ("base_lr", "lr_base_batch", "momentum", "nesterov", "clip_value",
               "clip_norm", "label_smoothing")


def recipe_settings(path=RECIPE):
    """The ``train.*`` optimizer, clipping and loss settings of a gin recipe (literals only)."""
    out = {}
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            m = re.match(r"train\.(\w+)\s*=\s*([^#]+)", line)
            if m and m.group(1) in RECIPE_KEYS:
                out[m.group(1)] = ast.literal_eval(m.group(2).strip())
    return out


def make_step(model, batch, xla=True):
    """Returns (run(x, y) -> loss (blocking), compile(x, y) -> (memory analysis or None, HLO
    counts or None)) for one training step of the library at ``batch`` images: under
    TensorFlow ``tpu_convrnn.training.train.Trainer``'s own step (loss, L2 terms, clipping, update)
    with the ImageNet recipe's optimizer and clipping (gin/recipes/imagenet.gin) at a constant
    learning rate; under JAX the same loss and clipping (``tpu_convrnn.training.objective``) and the
    same SGD, differentiated with ``jax.value_and_grad``."""
    recipe = recipe_settings()
    lr = recipe["base_lr"] * batch / recipe["lr_base_batch"]
    if keras.backend.backend() == "jax":
        import jax
        from tpu_convrnn.training import objective
        opt = keras.optimizers.SGD(lr, momentum=recipe["momentum"],
                                   nesterov=recipe["nesterov"])
        opt.build(model.trainable_variables)

        def loss_and_state(tv, ntv, x, y):
            mapping = list(zip(model.trainable_variables, tv)) + \
                list(zip(model.non_trainable_variables, ntv))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                loss = objective.replica_loss(model, x, y, batch, 1,
                                              label_smoothing=recipe.get("label_smoothing", 0))
            return loss, [scope.get_current_value(v) for v in model.non_trainable_variables]

        @jax.jit
        def step(tv, ntv, ov, x, y):
            (loss, ntv), grads = jax.value_and_grad(loss_and_state, has_aux=True)(tv, ntv, x, y)
            grads = objective.clip(grads, recipe.get("clip_value"), recipe.get("clip_norm"))
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

    import tempfile

    import tensorflow as tf
    from tpu_convrnn.training.train import TrainConfig, Trainer
    cfg = TrainConfig(global_batch=batch, decay="constant", **recipe)
    trainer = Trainer(lambda: model, cfg, tf.distribute.get_strategy(),
                      tempfile.mkdtemp(prefix="train_step_"))
    tf_step = trainer.step_function(jit_compile=xla)

    def do_compile(x, y):
        tf_step.get_concrete_function((tf.TensorSpec(x.shape, x.dtype),
                                       tf.TensorSpec(y.shape, y.dtype)))
        return None, None
    return (lambda x, y: float(tf_step((x, y)))), do_compile


def measure(name, model, batch, size, train_flops, args, peak):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
    y = rng.integers(0, 1000, (batch,)).astype("int32")
    run, do_compile = make_step(model, batch, xla=args.xla)
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
    print(f"{name:28s} batch {batch:4d}  {ips:9.2f} images/s  compile {compile_s:6.1f} s  "
          f"first step {first_s:6.1f} s  {train_flops / 1e9:7.1f} GFLOP/img  "
          f"{achieved / 1e12:7.2f} TFLOP/s  MFU {mfu}  {mem_kind} {mem / 2**30:.2f} GiB  "
          f"loss {loss:.3f}", flush=True)
    return ips, achieved


def _executed(counts, eliminate):
    """Training FLOPs per image that run, with or without elimination (``count_flops(model,
    batch)``)."""
    return counts["train_step_eliminated" if eliminate else "train_step"]


def _mode(eliminate):
    return "[eliminated]" if eliminate else "[dense]"


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
                   help="how the depthwise convs are computed (tpu_convrnn.model.depthwise methods)")
    p.add_argument("--fuse_convs", action=argparse.BooleanOptionalAction, default=False,
                   help="run a cell's convs of one tensor as one convolution (fused_convs)")
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
    p.add_argument("--eliminate", type=lambda v: {"both": [True, False], "on": [True],
                                                   "off": [False]}[v], default=[True, False],
                   help="work elimination (the execution setting): both (default: on, then "
                   "off, in this process), on or off")
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
    execution.set_default(remat=args.remat, depthwise=args.depthwise,
                          fuse_convs=args.fuse_convs)
    model = tpu_convrnn.build_model(args.model, image_size=args.image_size, dtype=dtype,
                                    **extra)
    t1 = time.perf_counter()
    flops = count_flops(model)
    print(f"{args.model}: T={model.times}, forward {flops['forward_executed'] / 1e9:.1f} "
          f"GFLOP/img if every node ran at every step, {flops['forward_to_loss'] / 1e9:.1f} "
          f"reach the loss (dense), of which {flops['forward_image_dependent'] / 1e9:.1f} "
          f"depend on the image and {flops['forward_once_per_batch'] / 1e9:.1f} run once per "
          f"batch after work elimination; a training step is counted as 3x the forward "
          f"(imports {t0 - PROCESS_START:.1f} s, model build {t1 - t0:.1f} s, FLOP count "
          f"{time.perf_counter() - t1:.1f} s)", flush=True)
    if args.xla_cost:
        xla = xla_cost_flops(model)
        print(f"XLA cost analysis of the forward: {xla / 1e9:.2f} GFLOP/img = "
              f"{xla / flops['forward_to_loss']:.3f} x the counted loss-reaching forward (XLA "
              "adds elementwise ops and leaves out taps on SAME padding)", flush=True)
    ours = None
    for batch in args.batch:  # the first batch size is the one the baselines are compared with
        counts = count_flops(model, batch)
        rates = {}
        for eliminate in args.eliminate:
            with execution.settings(eliminate=eliminate):
                rates[eliminate] = measure(f"{args.model} {_mode(eliminate)}", model, batch,
                                           args.image_size, _executed(counts, eliminate), args,
                                           peak)
            if rates[eliminate] is not None:
                ours = ours or rates[eliminate][1]
        if len(rates) == 2 and None not in rates.values():
            print(f"work elimination at batch {batch}: {rates[True][0] / rates[False][0]:.2f}x "
                  f"the images/s of the dense step ({rates[True][0]:.2f} vs "
                  f"{rates[False][0]:.2f}); executed training FLOPs "
                  f"{_executed(counts, True) / _executed(counts, False):.3f} x dense",
                  flush=True)
    if args.compile_only:
        return
    if args.baseline:
        base = tpu_convrnn.build_model(args.baseline, image_size=args.image_size, dtype=dtype,
                                       **extra)
        base_batch = args.baseline_batch or 4 * args.batch[0]
        with execution.settings(eliminate=args.eliminate[0]):
            base_achieved = measure(f"{args.baseline} {_mode(args.eliminate[0])}", base,
                                    base_batch, args.image_size,
                                    _executed(count_flops(base, base_batch), args.eliminate[0]),
                                    args, peak)[1]
        print(f"recurrence_overhead = {base_achieved / ours:.2f} "
              f"(baseline achieved FLOP/s / {args.model} achieved FLOP/s, both "
              f"{_mode(args.eliminate[0])})")
    if args.resnet50_batch:
        keras.config.set_dtype_policy(dtype)
        r50 = keras.applications.ResNet50(weights=None, input_shape=(args.image_size,) * 2 + (3,),
                                          classifier_activation=None)
        keras.config.set_dtype_policy("float32")
        f = 3 * keras_model_flops(r50)
        r50_achieved = measure("ResNet50", ScaledInput(r50), args.resnet50_batch, args.image_size,
                               f, args, peak)[1]
        print(f"MFU ratio {args.model} / ResNet50 = {ours / r50_achieved:.2f}")


class ScaledInput(keras.Model):
    """ResNet-50 taking uint8 images like the ConvRNN (scaled to [0, 1])."""

    def __init__(self, inner):
        super().__init__(dtype=inner.dtype_policy, name="resnet50_uint8")
        self.inner = inner
        self.built = True  # the inner application is built already

    # What the library's training step reads of a model: one time step, 1000 classes.
    times, num_classes = 1, 1000

    def call(self, x, training=False):
        return self.inner(keras.ops.cast(x, "float32") / 255.0, training=training)

    def unroll(self, images, record=(), training=False):
        return {"window_logits": keras.ops.cast(self(images, training=training),
                                                "float32")[:, None]}


if __name__ == "__main__":
    main()
