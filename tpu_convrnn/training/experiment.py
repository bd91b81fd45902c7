"""One run: train, evaluate, or both, from plain configs (gin builds them in ``main``).

    train_and_evaluate("train_and_eval", "runs/rgc", model_fn, DataConfig(source="embedded"),
                       TrainConfig(global_batch=32, train_steps=200))

The model dir holds ``checkpoints/``, ``train/`` (TensorBoard), ``eval/`` (TensorBoard,
``metrics.json``, ``accuracy_over_time.png``), the gin configs and, while a run holds it,
``LOCK`` (``tpu_convrnn.training.model_dir``). Only the chief writes configs, summaries and metrics.

What survives what: a kill at any moment loses at most the steps since the last checkpoint;
a checkpoint whose evaluation was cut off is evaluated when the run starts again (every kept
checkpoint without a metrics entry is); SIGTERM saves within one loop and exits (an
evaluation under way is dropped and redone at the restart).
"""
from __future__ import annotations

import contextlib
import logging
import time

import keras
import tensorflow as tf

from tpu_convrnn import files
from tpu_convrnn.data import pipeline
from tpu_convrnn.data.sources import DataConfig
from tpu_convrnn.progress import Progress, format_hms
from tpu_convrnn.training import distribute
from tpu_convrnn.training import model_dir as model_dir_lib
from tpu_convrnn.training.evaluate import (EvaluationStopped, evaluate, make_eval_step,
                                          read_metrics, record_metrics)
from tpu_convrnn.training.train import TrainConfig, Trainer, compile_seconds

MODES = ("train", "eval", "train_and_eval")

log = logging.getLogger(__name__)


def train_and_evaluate(mode: str, model_dir: str, model_fn, data: DataConfig, cfg: TrainConfig,
                       tpu: str | None = None, on_start=None, eval_missing: bool = True,
                       eval_name: str = "eval", eval_every_save: bool = True) -> dict:
    """Runs ``mode``; returns ``{"status": "done"|"preempted", "step": int, "metrics": dict,
    "seconds": dict}``, the last the wall time split into ``build`` (strategy, lock, model,
    restore), ``compile`` (the first training loop's trace and compile), ``train`` (the
    training loops without it), ``save`` (the rest of training: checkpoints, summaries, input
    start) and ``eval``.

    ``on_start(trainer)`` runs once the model is built and its checkpoint restored (e.g. to
    write the operative config). ``eval_missing``: evaluate, first, every kept checkpoint
    that has no metrics entry (an evaluation cut off by a kill); ``eval`` mode then
    evaluates the newest checkpoint if that did not. ``eval_name``: the model dir's folder
    for the evaluation's metrics and summaries (e.g. ``eval_test`` for a second held-out set).
    ``eval_every_save``: ``train_and_eval`` evaluates at every checkpoint; False: only at the
    last step, once (a search rung: one call trains and scores it, with one build).
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if not model_dir:
        raise ValueError(f"--mode={mode} needs --model_dir (checkpoints, summaries, metrics)")
    t_start = time.monotonic()
    data = data.resolved()
    data.check_files(mode)  # a garbage shard or bad first record: named before any build
    strategy = distribute.make_strategy(tpu)
    log.info(f"strategy: {distribute.describe(strategy)}")
    with model_dir_lib.hold(model_dir, distribute.is_chief(strategy)) as lock:
        keras.utils.set_random_seed(cfg.seed)  # the same initial weights for the same seed
        trainer = Trainer(model_fn, cfg, strategy, model_dir)
        model = trainer.model
        log.info(f"model {model.name}: {model.count_params():,} parameters, T={model.times}, "
                 f"{model.image_size}x{model.image_size} images, {model.num_classes} outputs; "
                 f"data: {data.source} {data.train_pattern or ''}; global batch "
                 f"{cfg.global_batch}, {cfg.train_steps} steps")
        if model.num_classes < data.num_classes:
            raise ValueError(f"the model has {model.num_classes} outputs but the data has "
                             f"{data.num_classes} classes (set model.num_classes)")
        trainer.restore()
        if on_start is not None:
            on_start(trainer)
        result = {"status": "done", "step": trainer.step, "metrics": None}
        t_built, t_training, eval_in_training = time.monotonic(), 0.0, 0.0
        with trainer.sigterm_guard():
            evaluation = None if mode == "train" else Evaluation(trainer, data, cfg, model_dir,
                                                                 eval_name)
            try:
                if evaluation and eval_missing:
                    result["metrics"] = evaluation.catch_up()
                if mode == "eval":
                    if trainer.checkpoints.latest is None:
                        raise ValueError(f"--mode=eval: no checkpoint in {model_dir}/checkpoints")
                    if result["metrics"] is None or result["metrics"]["step"] != trainer.step:
                        result["metrics"] = evaluation.run(trainer.step)
                else:
                    stats = pipeline.InputStats() if data.skip_bad else None
                    train_fn = data.train_input(model.image_size, cfg.global_batch, stats)
                    t0, e0 = time.monotonic(), _seconds(evaluation)
                    status, metrics = train_steps(
                        trainer, train_fn, cfg.train_steps, evaluation, eval_every_save,
                        heartbeat=lock.touch if lock else None, input_stats=stats,
                        input_errors=lambda: _named_input_errors(data, "train"))
                    t_training = time.monotonic() - t0
                    eval_in_training = _seconds(evaluation) - e0
                    result["status"] = status
                    result["metrics"] = metrics or result["metrics"]
            except EvaluationStopped:  # SIGTERM during an evaluation: its checkpoint is saved
                log.info(f"SIGTERM: evaluation dropped {trainer.sigterm_delay()} after the "
                         "signal (it is redone when the run restarts); exit 0")
                result["status"] = "preempted"
        result["step"] = trainer.step
        loops = sum(dt for _, dt in trainer.loop_seconds)
        compiled = compile_seconds(trainer.loop_seconds)
        result["seconds"] = {"build": t_built - t_start, "compile": compiled,
                             "train": loops - compiled,
                             "save": max(0.0, t_training - eval_in_training - loops),
                             "eval": _seconds(evaluation)}
        return result


def train_steps(trainer: Trainer, train_fn, to_step: int, evaluation=None,
                eval_every_save: bool = True, heartbeat=None, input_stats=None,
                input_errors=contextlib.nullcontext) -> tuple:
    """The training loop, every cadence in this one body: from the trainer's step to
    ``to_step``, ``steps_per_loop`` steps per call of the compiled function; after each call
    the console line and summaries, ``heartbeat()`` (the model dir's lock) and the hosts'
    agreed SIGTERM check; a checkpoint every ``trainer.save_interval`` steps, at ``to_step``
    and at a SIGTERM (which then stops the loop); an evaluation after each checkpoint
    (``eval_every_save``) or once at ``to_step``. Returns ``(status, metrics)``: "done" or
    "preempted", and the last evaluation's metrics (None without one). ``input_stats``: the
    ``pipeline.InputStats`` of ``train_fn`` (its skipped records are said at each save);
    ``input_errors()``: a context around each call of the steps that names a bad record."""
    cfg, every, metrics = trainer.cfg, trainer.save_interval, None
    step0, t_start = trainer.step, time.monotonic()
    if step0 >= to_step:
        log.info(f"already at step {step0} >= {to_step}: nothing to train")
    try:
        while trainer.step < to_step:
            n = min(cfg.steps_per_loop, to_step - trainer.step)
            with input_errors():
                loss, seconds = trainer.run_steps(train_fn, n)
            _report(trainer, loss, n, seconds, step0, t_start, to_step)
            if heartbeat is not None:
                heartbeat()
            preempted = trainer.stop_requested()
            if trainer.step % every and trainer.step < to_step and not preempted:
                continue
            path = trainer.checkpoints.save(trainer.step)
            log.info(f"step {trainer.step}: saved checkpoint {path}")
            if input_stats is not None and input_stats.skipped:
                log.info(f"data.skip_bad: {input_stats.skipped:,} bad training records "
                         f"skipped so far ({input_stats.read:,} read since this run started)")
            if preempted:
                log.info(f"SIGTERM received: checkpoint saved {trainer.sigterm_delay()} after "
                         "the signal, stopping (exit 0); restart with the same --model_dir to "
                         "resume")
                return "preempted", metrics
            if evaluation is not None and eval_every_save:
                metrics = evaluation.run(trainer.step)
    finally:
        trainer.writer.flush()
    if evaluation is not None and not eval_every_save:
        metrics = evaluation.at_step(trainer.step)
    return "done", metrics


def _report(trainer, loss, n, seconds, step0, t_start, to_step):
    """The console line and training summaries of a loop of ``n`` steps."""
    step = trainer.step
    ips = n * trainer.cfg.global_batch / max(seconds, 1e-9)
    rate = (step - step0) / max(time.monotonic() - t_start, 1e-9)
    eta = (to_step - step) / rate if rate > 0 else float("inf")
    lr = float(trainer.schedule(step))
    log.info(f"step {step}/{to_step}  loss {loss:.4f}  lr {lr:.4g}  {ips:,.1f} images/s  "
             f"ETA {format_hms(eta)}")
    with trainer.writer.as_default(step=step):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("learning_rate", lr)
        tf.summary.scalar("images_per_second", ips)


def _seconds(evaluation) -> float:
    """Wall seconds of the evaluations run so far."""
    return evaluation.seconds if evaluation is not None else 0.0


class Evaluation:
    """Held-out evaluation of the trainer's model at a checkpoint step, recorded in
    ``<model_dir>/<eval_name>`` (metrics.json, the accuracy-over-time plot, TensorBoard)."""

    def __init__(self, trainer, data, cfg, model_dir, eval_name="eval"):
        self.trainer, self.data = trainer, data
        self.eval_dir = f"{model_dir}/{eval_name}"
        self.chance = 1.0 / data.num_classes
        self.batch = cfg.eval_batch or cfg.global_batch
        self.fn = data.eval_fn(trainer.model.image_size, self.batch)
        self.step_fn = make_eval_step(trainer.model, trainer.strategy)
        self.writer = None
        self.seconds = 0.0  # wall time of the evaluations run
        if trainer.chief:  # a full or read-only eval folder: one line now, not at the first eval
            files.writable_folder(self.eval_dir, "the eval folder")
            self.writer = tf.summary.create_file_writer(self.eval_dir)

    def run(self, step: int) -> dict:
        t0 = time.monotonic()
        try:
            return self._run(step)
        finally:
            self.seconds += time.monotonic() - t0

    def _run(self, step: int) -> dict:
        batches = -(-self.fn.num_examples // self.batch)
        with Progress(batches, "eval", unit="batches") as bar, \
                _named_input_errors(self.data, "eval"):
            metrics = evaluate(self.trainer.model, self.trainer.strategy, self.fn, step, bar,
                               self.step_fn, stop=self.trainer.stop_requested)
        metrics["num_skipped"] = self.fn.num_examples - metrics["num_examples"]
        skipped = (f", {metrics['num_skipped']:,} bad records skipped (data.skip_bad)"
                   if metrics["num_skipped"] else "")
        log.info(f"eval at step {step}: top1 {metrics['top1']:.4f}  top5 {metrics['top5']:.4f}"
                 f"  ({metrics['num_examples']} images{skipped}); top1 by time step: "
                 + " ".join(f"{a:.2f}" for a in metrics["top1_per_step"]))
        if self.trainer.chief:
            record_metrics(self.eval_dir, metrics, self.writer, chance=self.chance)
            log.info(f"wrote {self.eval_dir}/metrics.json and {self.eval_dir}/"
                     "accuracy_over_time.png")
        return metrics

    def at_step(self, step: int) -> dict:
        """The metrics of ``step``: recorded already (a run cut off after its evaluation), or
        evaluated now."""
        done = [e for e in read_metrics(self.eval_dir) if e["step"] == step]
        return done[0] if done else self.run(step)

    def catch_up(self) -> dict | None:
        """Evaluates every kept checkpoint without a metrics entry, oldest first, then puts
        the newest checkpoint's state back; returns the newest metrics computed (or None)."""
        done = {e["step"] for e in read_metrics(self.eval_dir)}
        newest = self.trainer.step
        missing = [(s, p) for s, p in self.trainer.checkpoints.steps()
                   if s not in done and s <= newest]  # (a newer one is unreadable)
        if not missing:
            return None
        log.info(f"{len(missing)} checkpoint(s) without an evaluation (cut off by a kill?): "
                 + ", ".join(f"ckpt-{s}" for s, _ in missing))
        metrics = None
        for step, path in missing:
            if self.trainer.checkpoints.restore_path(path):  # else: said why, skipped
                metrics = self.run(step)
        self.trainer.restore(quiet=True)
        return metrics if metrics is not None and metrics["step"] == newest else None


@contextlib.contextmanager
def _named_input_errors(data, what):
    """A TF error while reading the input becomes ``InputError`` naming the file and record
    (found by scanning the ``what`` files); other errors pass unchanged."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        named = data.input_error(e, what) if data.source != "fake" else None
        if named is None:
            raise
        raise named from e
