"""Does the same run repeat? Trains one configuration several times from scratch on the same
seed, each time in a fresh process, and compares the checkpoints variable by variable.

    python bench/rerun.py --gin_file=bench/search_occluded/tpe/gins/trial_00001.gin \\
        --steps=1 --runs=4 [--threads=1] [--no_onednn] [--op_determinism] \\
        [--no_graph_optimization]

First ``--runs`` runs at learning rate 0 (their checkpoints hold the initial weights, so this
checks the initialisation), then ``--runs`` runs of ``--steps`` steps at the file's own rate.
Every run is ``python -m tpu_convrnn.main --mode=train`` with no warmup and a checkpoint
at the end. Prints, for each run against the first: how many float variables differ, the
largest absolute difference and where, and the last step's loss line. The flags set what
TensorFlow reads from the environment when it starts: ``--threads=1``
(``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS``: one thread in each pool),
``--no_onednn`` (``TF_ENABLE_ONEDNN_OPTS=0``) and ``--op_determinism``
(``TF_DETERMINISTIC_OPS=1``); ``--no_graph_optimization`` binds
``train.graph_optimization = False`` (Grappler off).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment(args) -> dict:
    """The process environment of a run: TensorFlow reads these when it starts."""
    env = dict(os.environ)
    if args.threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(args.threads),
                   TF_NUM_INTEROP_THREADS=str(args.threads))
    if args.no_onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if args.op_determinism:
        env["TF_DETERMINISTIC_OPS"] = "1"
    return env


def train(args, model_dir: str, steps: int, bindings=()) -> str:
    """One run in its own process; returns its last ``step N/N`` line."""
    cmd = [sys.executable, "-m", "tpu_convrnn.main", "--mode=train", f"--model_dir={model_dir}"]
    cmd += [f"--gin_file={g}" for g in args.gin_file]
    extra = ["train.graph_optimization = False"] if args.no_graph_optimization else []
    cmd += [f"--gin_param={p}" for p in [*args.gin_param, *extra, f"train.train_steps = {steps}",
                                         "train.warmup_steps = 0",
                                         f"train.checkpoint_every = {steps}", *bindings]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=environment(args))
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"run in {model_dir} failed (exit {proc.returncode}): {last[0]}")
    lines = re.findall(rf"^step {steps}/{steps} .*$", proc.stdout, re.M)
    return lines[-1] if lines else ""


def differences(first: str, other: str) -> tuple[int, int, float, str]:
    """(float variables, how many differ, largest |difference|, its variable) of two
    checkpoints."""
    import numpy as np
    import tensorflow as tf
    a, b = tf.train.load_checkpoint(first), tf.train.load_checkpoint(other)
    n = differ = 0
    largest, where = 0.0, ""
    for name in sorted(a.get_variable_to_shape_map()):
        x, y = np.asarray(a.get_tensor(name)), np.asarray(b.get_tensor(name))
        if x.dtype.kind != "f":
            continue
        n += 1
        if not np.array_equal(x, y):
            differ += 1
            d = float(np.max(np.abs(x.astype(np.float64) - y)))
            if d > largest:
                largest, where = d, name.split("/.ATTRIBUTES")[0]
    return n, differ, largest, where


def compare(args, root: str, key: str, label: str, steps: int, bindings=()):
    ckpts = []
    for i in range(args.runs):
        d = os.path.join(root, f"{key}_{i + 1}")
        if os.path.exists(d):  # a run there would resume from its checkpoint, not start afresh
            sys.exit(f"--output: {d} exists (give an empty folder)")
        line = train(args, d, steps, bindings)
        ckpts.append(os.path.join(d, "checkpoints", f"ckpt-{steps}"))
        print(f"{label} run {i + 1}: {line or '(no step line)'}", flush=True)
    for i in range(1, args.runs):
        n, differ, largest, where = differences(ckpts[0], ckpts[i])
        extra = f", largest |difference| {largest:.3g} ({where})" if differ else ""
        print(f"{label}: run {i + 1} against run 1: {differ} of {n} float variables "
              f"differ{extra}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gin_file", action="append", required=True, help="as for tpu_convrnn.main")
    p.add_argument("--gin_param", action="append", default=[], help="as for tpu_convrnn.main")
    p.add_argument("--steps", type=int, default=1, help="training steps of each run")
    p.add_argument("--runs", type=int, default=3, help="runs of each kind (>= 2)")
    p.add_argument("--threads", type=int, default=0, help="intra- and inter-op threads (0: "
                   "TensorFlow's default)")
    p.add_argument("--no_onednn", action="store_true", help="TF_ENABLE_ONEDNN_OPTS=0")
    p.add_argument("--op_determinism", action="store_true",
                   help="TF_DETERMINISTIC_OPS=1")
    p.add_argument("--no_graph_optimization", action="store_true",
                   help="train.graph_optimization = False (Grappler off)")
    p.add_argument("--output", default="", help="folder for the runs (default: a temporary one)")
    args = p.parse_args(argv)
    if args.runs < 2 or args.steps < 1:
        p.error("--runs must be >= 2 and --steps >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.output or tmp
        compare(args, root, "init", "initial weights (learning rate 0)", 1,
                ["train.base_lr = 0.0"])
        compare(args, root, "trained", f"after {args.steps} step(s)", args.steps)


if __name__ == "__main__":
    main()
