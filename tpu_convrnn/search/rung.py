"""One rung of one trial, and the runner process that runs rung after rung for a worker.

A rung trains a trial's gin file afresh (or resumes from its model dir's newest checkpoint)
with its own schedule: ``train.train_steps`` = the budget, warmup the same fraction of it as
the recipe's, decaying to zero at the budget. Then the last step is evaluated on the minival
and ``DIR/eval/metrics.json`` written, in one ``train_and_evaluate`` call (one build, one
strategy). Its outcome is a ``RungResult`` (status ``done`` / ``preempted`` / ``diverged`` /
``busy`` / ``failed``, top-1, the error line, wall times), written atomically as JSON.

One rung from the command line (exit 0: done; 3: stopped by SIGTERM after saving, in training
or in the evaluation, resume later; 4: the loss diverged, a result of the trial; 5: another
live run holds the model dir, nothing was done; 1: failed):

    python -m tpu_convrnn.search.rung --gin_file=trial.gin --model_dir=DIR --steps=60 \\
        --warmup_fraction=0.1 --checkpoint_every=20 [--result=DIR/rung.json]

A worker keeps one runner instead (``--serve``, see ``runner.Runner``): a child process that
imports TensorFlow once and runs the rungs it is sent (JSON lines on its stdin), each in a fresh
Keras session, answering on a control pipe with the path of each result. A crash or an
out-of-memory kill of the runner ends the rung it ran, not the worker.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import traceback

from absl import flags

from tpu_convrnn import cli, console, gin_bindings, lazy
from tpu_convrnn.files import write_atomic

# (TensorFlow and Keras: loaded by the first rung, or at a runner's start)
experiment = lazy("tpu_convrnn.training.experiment")
evaluate = lazy("tpu_convrnn.training.evaluate")
train_lib = lazy("tpu_convrnn.training.train")
model_dir_lib = lazy("tpu_convrnn.training.model_dir")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STATUSES = ("done", "preempted", "diverged", "busy", "failed")
EXIT_CODES = {"done": 0, "failed": 1, "preempted": 3, "diverged": 4, "busy": 5}
PREEMPTED, DIVERGED = EXIT_CODES["preempted"], EXIT_CODES["diverged"]


@dataclasses.dataclass
class RungResult:
    """What a rung came to. ``seconds``: ``startup`` (the runner's start and imports, paid by
    the first rung of a runner), then ``train_and_evaluate``'s split (``build``, ``compile``,
    ``train``, ``save``, ``eval``) and ``total`` (the request's arrival to the result)."""
    status: str
    step: int = 0
    top1: float | None = None
    top1_per_step: list = dataclasses.field(default_factory=list)
    error: str = ""
    seconds: dict = dataclasses.field(default_factory=dict)
    rss_mb: float = float("nan")
    pid: int = 0  # the process that ran it

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"rung status {self.status!r}: expected one of {STATUSES}")

    def write(self, path: str):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        data = dataclasses.asdict(self)
        data["rss_mb"] = None if math.isnan(self.rss_mb) else round(self.rss_mb)
        write_atomic(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def read(cls, path: str) -> "RungResult":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data["rss_mb"] = float("nan") if data.get("rss_mb") is None else data["rss_mb"]
        return cls(**data)


def budget_settings(steps: int, warmup_fraction: float, checkpoint_every: int) -> dict:
    """The ``train.*`` values of training to a budget: its own warmup (the recipe's fraction)
    and decay to zero at ``steps``, checkpoints every ``checkpoint_every`` steps."""
    return {"train.train_steps": int(steps),
            "train.warmup_steps": int(round(warmup_fraction * steps)),
            "train.checkpoint_every": int(min(checkpoint_every, steps))}


def finished_metrics(model_dir: str, steps: int) -> dict | None:
    """The metrics of the rung's final checkpoint, if already evaluated."""
    import tensorflow as tf

    path = f"{model_dir}/eval/{evaluate.METRICS_FILE}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        entries = json.load(f)
    return next((e for e in entries if e["step"] == int(steps)), None)


def rss_mb() -> float:
    """This process's resident memory in MB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _error_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def run_rung(gin_file: str, model_dir: str, steps: int, checkpoint_every: int,
             warmup_fraction: float = 0.0, tpu: str | None = None) -> RungResult:
    """Trains and scores one rung in this process, in a fresh Keras session and gin config.
    Never raises for a fault of the rung: errors become a ``failed`` result (the traceback of
    an unexpected one is printed), a diverged loss a ``diverged`` one, a model dir that another
    live run holds a ``busy`` one."""
    import gin
    import keras

    t0 = time.monotonic()
    keras.backend.clear_session(free_memory=True)
    gin.clear_config()
    try:
        settings = budget_settings(steps, warmup_fraction, checkpoint_every)
        # a rung builds its input pipelines afresh: without autotuning, their deletion waits
        # for no tuning thread (pipeline.InputConfig.autotune; the same data)
        settings["data.autotune"] = False
        gin_bindings.parse_gin([gin_file], [f"{k} = {v}" for k, v in settings.items()])
        data, cfg = gin_bindings.configured_data(), gin_bindings.configured_train()
        # the rung's last step only: no evaluation at the checkpoints on the way
        out = experiment.train_and_evaluate(
            "train_and_eval", model_dir, gin_bindings.configured_model, data, cfg, tpu=tpu,
            eval_missing=False, eval_every_save=False)
    except train_lib.TrainingDiverged as e:
        result = RungResult("diverged", error=_error_line(e))
    except model_dir_lib.ModelDirInUse as e:  # (before anything was built or written)
        result = RungResult("busy", error=_error_line(e))
    except (ValueError, RuntimeError) as e:
        result = RungResult("failed", error=_error_line(e))
    except Exception as e:  # noqa: BLE001  (a TensorFlow error, a bug: this rung alone fails)
        traceback.print_exc()
        result = RungResult("failed", error=_error_line(e))
    else:
        metrics = out["metrics"] or {}
        result = RungResult(out["status"], step=out["step"], top1=metrics.get("top1"),
                            top1_per_step=list(metrics.get("top1_per_step", [])),
                            seconds={k: round(v, 2) for k, v in out["seconds"].items()})
    if result.error:
        print(f"error: {result.error}", file=sys.stderr, flush=True)
    result.seconds["total"] = round(time.monotonic() - t0, 2)
    result.rss_mb, result.pid = rss_mb(), os.getpid()
    return result


def serve(control_fd: int) -> int:
    """The runner loop: a JSON request per stdin line (``run_rung``'s arguments, ``result``:
    where to write the ``RungResult``, ``sent``: the worker's ``time.time()`` when it sent
    it); after each rung its result is written and ``{"result": path}`` is sent on
    ``control_fd`` (and ``{"started": path}`` when it takes a request: the worker's hang
    clock starts then). Returns after a preempted rung (the worker is stopping) or at the end
    of stdin."""
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    console.to_console()
    experiment.train_and_evaluate  # (loads TensorFlow and Keras, once, before any rung)
    control = os.fdopen(control_fd, "w", buffering=1)
    first = True
    for line in sys.stdin:
        request = json.loads(line)
        sent = request.pop("sent")
        startup = max(0.0, time.time() - sent) if first else 0.0
        first = False
        path = request.pop("result")
        control.write(json.dumps({"started": path}) + "\n")
        result = run_rung(**request)
        result.seconds["startup"] = round(startup, 2)
        result.write(path)
        sys.stdout.flush()
        sys.stderr.flush()  # (its output is in the pipe before the answer)
        control.write(json.dumps({"result": path}) + "\n")
        if result.status == "preempted":
            return 0
    return 0


FLAGS = flags.FlagValues()
flags.DEFINE_boolean("serve", False, "run the rungs sent on stdin (a worker's runner); the "
                     "flags below are for one rung", flag_values=FLAGS)
flags.DEFINE_integer("control_fd", None, "--serve: the pipe on which each result's path is "
                     "answered", flag_values=FLAGS)
flags.DEFINE_string("gin_file", None, "the trial's gin file", flag_values=FLAGS)
flags.DEFINE_string("model_dir", None, "the rung's folder (checkpoints, eval/)",
                    flag_values=FLAGS)
flags.DEFINE_integer("steps", None, "the rung's budget (training steps)", flag_values=FLAGS)
flags.DEFINE_float("warmup_fraction", 0.0, "warmup steps as a fraction of the budget",
                   flag_values=FLAGS)
flags.DEFINE_integer("checkpoint_every", None, "steps between checkpoints", flag_values=FLAGS)
flags.DEFINE_string("tpu", None, "TPU name or address (default: none)", flag_values=FLAGS)
flags.DEFINE_string("result", None, "write the RungResult (JSON) here (default: "
                    "DIR/rung_result.json)", flag_values=FLAGS)


def main(argv=None) -> int:
    return cli.main(_main, FLAGS, __doc__, argv)


def _main(args) -> int:
    if args.serve:
        if args.control_fd is None:
            raise cli.UsageError("--serve needs --control_fd")
        return serve(args.control_fd)
    missing = [f"--{k}" for k in ("gin_file", "model_dir", "steps", "checkpoint_every")
               if getattr(args, k) is None]
    if missing:
        raise cli.UsageError(f"one rung needs {', '.join(missing)}")
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    console.to_console()
    result = run_rung(args.gin_file, args.model_dir, args.steps, args.checkpoint_every,
                      args.warmup_fraction, args.tpu)
    result.write(args.result or os.path.join(args.model_dir, "rung_result.json"))
    return EXIT_CODES[result.status]


if __name__ == "__main__":
    sys.exit(main())
