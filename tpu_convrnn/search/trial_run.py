"""One rung of one trial, in its own process: train to a budget, then evaluate on the minival.

    python -m tpu_convrnn.search.trial_run --gin_file=trial.gin --model_dir=DIR --steps=60 \
        --warmup_fraction=0.1 --checkpoint_every=20

The rung trains afresh (or resumes from ``DIR``'s newest checkpoint) with its own schedule:
``train.train_steps`` = the budget, warmup the same fraction of it as the recipe's, decaying to
zero at the budget. Then the newest checkpoint is evaluated and ``DIR/eval/metrics.json``
written, in one ``train_and_evaluate`` call (one build, one strategy). Exit 0: done; 3:
stopped by SIGTERM after saving, in training or in the evaluation (resume later); 4: the loss diverged
(a result of the trial, not a fault); 1 or 2: an error.
Workers run rungs this way so that a crash or an out-of-memory kill ends one rung, not the
worker, and a worker's memory does not grow from trial to trial.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PREEMPTED = 3
DIVERGED = 4


def budget_settings(steps: int, warmup_fraction: float, checkpoint_every: int) -> dict:
    """The ``train.*`` values of training to a budget: its own warmup (the recipe's fraction)
    and decay to zero at ``steps``, checkpoints every ``checkpoint_every`` steps."""
    return {"train.train_steps": int(steps),
            "train.warmup_steps": int(round(warmup_fraction * steps)),
            "train.checkpoint_every": int(min(checkpoint_every, steps))}


def finished_metrics(model_dir: str, steps: int) -> dict | None:
    """The metrics of the rung's final checkpoint, if already evaluated."""
    import tensorflow as tf

    from tpu_convrnn.training.evaluate import METRICS_FILE
    path = f"{model_dir}/eval/{METRICS_FILE}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        entries = json.load(f)
    return next((e for e in entries if e["step"] == int(steps)), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gin_file", required=True)
    p.add_argument("--model_dir", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup_fraction", type=float, default=0.0)
    p.add_argument("--checkpoint_every", type=int, required=True)
    p.add_argument("--tpu", default=None)
    args = p.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from tpu_convrnn import gin_bindings
    from tpu_convrnn.training.experiment import train_and_evaluate
    from tpu_convrnn.gin_bindings import parse_gin
    from tpu_convrnn.training.train import TrainingDiverged
    try:
        settings = budget_settings(args.steps, args.warmup_fraction, args.checkpoint_every)
        parse_gin([args.gin_file], [f"{k} = {v}" for k, v in settings.items()])
        data, cfg = gin_bindings.configured_data(), gin_bindings.configured_train()
        # the rung's last step only: no evaluation at the checkpoints on the way
        result = train_and_evaluate("train_and_eval", args.model_dir,
                                    gin_bindings.configured_model, data, cfg, tpu=args.tpu,
                                    eval_missing=False, eval_every_save=False)
        if result["status"] == "preempted":
            return PREEMPTED
    except TrainingDiverged as e:
        print(f"error: TrainingDiverged: {e}", file=sys.stderr, flush=True)
        return DIVERGED
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except RuntimeError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
