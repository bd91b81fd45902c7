"""Training state and steps: orbit-style, many steps per ``tf.function`` call over ``strategy.run``.

    trainer = Trainer(lambda: build_model("rgc_intermediate"), TrainConfig(), strategy, model_dir)
    trainer.restore()
    mean_loss, seconds = trainer.run_steps(data.train_input(224, 256), num_steps=100)

``Trainer`` holds the state (model, optimizer, checkpoints, the compiled multi-step function
and the input it continues); the loop around it, with every cadence (console line, heartbeat,
save, evaluation, stop), is ``tpu_convrnn.training.experiment.train_steps``.

Per step, on every replica: the model runs all T steps and the loss of
``tpu_convrnn.training.objective`` (cross-entropy at the loss steps over the global batch, plus the
model's L2 terms); gradients are summed across replicas, optionally clipped (by value, or by
global norm), then applied by SGD with (Nesterov) momentum or by Adam (``train.optimizer``)
under a warmup + cosine/step schedule scaled by the global batch.

State and faults:

* a restart with the same model dir resumes from the newest readable checkpoint (model,
  optimizer slots, step; the schedule is a function of the step) and says so;
* data order after a resume: the training input is re-seeded with ``seed + step`` (a new
  deterministic shuffle and augmentation from the resume point), not replayed to the exact
  position; the same restart point always gives the same data;
* SIGTERM (a preemption notice), inside ``sigterm_guard()``, is a request
  (``stop_requested()``) that the loop acts on after the current loop of steps; with several
  hosts, a signal that reached any of them stops all at the same step (the hosts agree,
  ``distribute.any_host``);
* a NaN/Inf loss -> ``TrainingDiverged`` naming the first bad step; nothing is saved after it,
  so the last good checkpoint stays.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import keras
import tensorflow as tf

from tpu_convrnn.training import distribute, objective
from tpu_convrnn.training.checkpoints import CHECKPOINT_SUBDIR, TrainingCheckpoints
from tpu_convrnn.training.preemption import Preemption
from tpu_convrnn.training.schedules import WarmupDecay, scaled_learning_rate

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    """The training recipe (gin: ``train.*``)."""
    global_batch: int = 256
    train_steps: int = 1000
    base_lr: float = 0.1            # for lr_base_batch examples; scaled linearly
    lr_base_batch: int = 256
    warmup_steps: int = 0
    decay: str = "cosine"           # cosine | step | constant
    optimizer: str = "sgd"          # sgd (with momentum, nesterov) | adam
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.0
    clip_value: float | None = None  # per-element gradient clipping (the original's search)
    clip_norm: float | None = None   # global-norm clipping
    loss_steps: tuple | None = None  # time steps in the loss (negative: from the end)
    steps_per_loop: int = 100
    checkpoint_every: int = 1000     # steps; rounded up to whole loops
    keep_checkpoints: int = 3
    seed: int = 0
    eval_batch: int | None = None    # default: global_batch
    # Grappler's rewrites of the compiled functions. An execution setting: False turns them
    # all off (no op fusions, no constant folding), which made CPU reruns on one seed repeat
    # bit for bit (bench/rerun.py). Process-wide: the last Trainer built sets it for every
    # function traced after it.
    graph_optimization: bool = True

    def check(self):
        for name in ("global_batch", "train_steps", "steps_per_loop", "checkpoint_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)}: must be positive")
        if not 0 <= self.warmup_steps <= self.train_steps:
            raise ValueError(f"train.warmup_steps = {self.warmup_steps} must lie in [0, "
                             f"train.train_steps = {self.train_steps}]")
        if self.clip_value is not None and self.clip_norm is not None:
            raise ValueError("train.clip_value and train.clip_norm: set at most one")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer = {self.optimizer!r}: expected one of "
                             f"{', '.join(OPTIMIZERS)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"train.label_smoothing = {self.label_smoothing}: expected [0, 1)")


def check_loss_steps(steps, times: int):
    """ValueError naming ``train.loss_steps`` if a step lies outside [-times, times)."""
    for s in steps or ():
        if isinstance(s, bool) or not isinstance(s, int) or not -times <= s < times:
            raise ValueError(f"train.loss_steps = {tuple(steps)}: step {s!r} outside "
                             f"[-{times}, {times}) (model.times = {times}; negative counts "
                             "from the end)")


OPTIMIZERS = ("sgd", "adam")


def _set_graph_optimization(on: bool):
    """Grappler on or off for the functions traced from now on (``train.graph_optimization``).
    With it on, a CPU step's gradients can differ in the last bit between two processes (never
    within one): a rewrite that ``tf.config.optimizer`` cannot turn off alone (with each group
    of the passes it names off, runs still parted); with the meta-optimizer off they agree."""
    if tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) == on:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})


def make_optimizer(cfg: TrainConfig, learning_rate):
    """SGD with ``cfg.momentum`` (Nesterov if ``cfg.nesterov``), or Adam (Keras' defaults:
    beta 0.9 / 0.999, epsilon 1e-7), at ``learning_rate`` (a schedule)."""
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf."""


class Trainer:
    """The state of a run: model and optimizer built under the strategy, its checkpoints, the
    compiled multi-step function and the training input it continues."""

    def __init__(self, model_fn, cfg: TrainConfig, strategy: tf.distribute.Strategy,
                 model_dir: str):
        cfg.check()
        self.cfg, self.strategy = cfg, strategy
        self._unreached = []
        _set_graph_optimization(cfg.graph_optimization)
        self.chief = distribute.is_chief(strategy)
        peak = scaled_learning_rate(cfg.base_lr, cfg.global_batch, cfg.lr_base_batch)
        self.schedule = WarmupDecay(peak, cfg.warmup_steps, cfg.train_steps, cfg.decay)
        with strategy.scope():
            self.model = model_fn()
            check_loss_steps(cfg.loss_steps, self.model.times)
            self.optimizer = make_optimizer(cfg, self.schedule)
            self.optimizer.build(self.model.trainable_variables)
        resolver = getattr(strategy, "cluster_resolver", None)
        worker_id = getattr(resolver, "task_id", 0) or 0
        self.checkpoints = TrainingCheckpoints(
            self.model, self.optimizer, f"{model_dir}/{CHECKPOINT_SUBDIR}",
            cfg.keep_checkpoints, chief=self.chief, worker_id=worker_id)
        self.writer = tf.summary.create_file_writer(f"{model_dir}/train") \
            if self.chief else tf.summary.create_noop_writer()
        self._loop = None
        self._input = None  # (dataset_fn, step it continues from, iterator)
        self.preemption = Preemption(strategy)
        self.history = []  # (step, mean loss of the loop that ended there)
        self.loop_seconds = []  # (steps, wall s) of every loop run; the first holds the compile

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self, quiet: bool = False) -> int:
        """Restores the newest readable checkpoint (if any); returns the step."""
        path = self.checkpoints.restore()
        if path and not quiet:
            log.info(f"resumed from checkpoint {path} at step {self.step}")
        return self.step

    @property
    def save_interval(self) -> int:
        """Steps between checkpoints: ``checkpoint_every`` rounded up to whole loops."""
        cfg = self.cfg
        return max(1, math.ceil(cfg.checkpoint_every / cfg.steps_per_loop)) * cfg.steps_per_loop

    def stop_requested(self) -> bool:
        """Whether SIGTERM reached this host or any other: a collective with several hosts
        (all call it together, e.g. before each evaluation batch)."""
        return self.preemption.agree()

    def sigterm_guard(self):
        """While inside, SIGTERM sets ``stop_requested()`` instead of killing the process."""
        return self.preemption.guard()

    def sigterm_delay(self) -> str:
        """Seconds since the SIGTERM, for the exit message."""
        return self.preemption.delay()

    # ------------------------------------------------------------------ one step
    def _step_fn(self, batch):
        images, labels = batch
        cfg, n_replicas = self.cfg, self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            total = objective.replica_loss(self.model, images, labels, cfg.global_batch,
                                           n_replicas, cfg.loss_steps, cfg.label_smoothing)
        grads = tape.gradient(total, variables)
        # A variable the loss does not reach (max_conf's beta: behind an argmax) is left as it
        # is, as the original's TF1 optimizer left it; said once, when the step is traced.
        unreached = [v.path for g, v in zip(grads, variables) if g is None]
        if unreached and unreached != self._unreached:
            self._unreached = unreached
            log.info(f"no gradient reaches {', '.join(unreached)}: left at its loaded or "
                     f"initial value")
        variables = [v for g, v in zip(grads, variables) if g is not None]
        grads = [g for g in grads if g is not None]
        grads = tf.distribute.get_replica_context().all_reduce("SUM", grads)
        grads = objective.clip(grads, cfg.clip_value, cfg.clip_norm)
        # The optimizer sums gradients over replicas again; hand it each replica's share.
        self.optimizer.apply_gradients([(g / n_replicas, v) for g, v in zip(grads, variables)])
        return total

    def step_function(self, jit_compile: bool = False):
        """``step((images, labels)) -> loss``: one training step exactly as the loop runs it
        (loss, L2 terms, clipping, update), as a ``tf.function`` (for benchmarks)."""
        @tf.function(jit_compile=jit_compile, autograph=False)
        def step(batch):
            return self.strategy.reduce("SUM", self.strategy.run(self._step_fn, (batch,)),
                                        axis=None)
        return step

    def _make_loop(self):
        """``loop(iterator, num_steps) -> (mean loss, first bad step or -1)``: ``num_steps``
        training steps in one ``tf.function`` call (a ``tf.while_loop``; traced once).

        Traced without AutoGraph: the model's time loop is static Python and no code under it
        branches on a tensor's value, so there is nothing to convert, and converting the
        package's model code cost seconds at the first trace of every process."""
        strategy, opt = self.strategy, self.optimizer

        def body(i, loss_sum, first_bad, iterator):
            loss = strategy.reduce("SUM", strategy.run(self._step_fn, (next(iterator),)),
                                   axis=None)
            bad = tf.logical_and(first_bad < 0, tf.logical_not(tf.math.is_finite(loss)))
            first_bad = tf.where(bad, tf.cast(opt.iterations, tf.int64), first_bad)
            return i + 1, loss_sum + loss, first_bad

        @tf.function(autograph=False)
        def loop(iterator, num_steps):
            _, loss_sum, first_bad = tf.while_loop(
                lambda i, *_: i < num_steps,
                lambda i, loss_sum, first_bad: body(i, loss_sum, first_bad, iterator),
                (tf.constant(0, num_steps.dtype), tf.constant(0.0), tf.constant(-1, tf.int64)))
            return loss_sum / tf.cast(num_steps, tf.float32), first_bad
        return loop

    # ------------------------------------------------------------------ steps
    def run_steps(self, dataset_fn, num_steps: int) -> tuple:
        """Trains ``num_steps`` steps in one call of the compiled multi-step function; returns
        (their mean loss, wall seconds). ``TrainingDiverged`` (naming the first bad step) if
        the loss became NaN or Inf: nothing is saved then, so the last good checkpoint stays.

        ``dataset_fn(seed)`` -> a function ``input_context -> dataset`` (see
        ``DataConfig.train_fn``). It is called with ``cfg.seed + current step`` when the
        input starts here (the first call, a restore, another ``dataset_fn``); later calls
        continue that input where the previous one stopped."""
        start = self.step
        if self._input is None or self._input[:2] != (dataset_fn, start):
            dist = self.strategy.distribute_datasets_from_function(
                dataset_fn(self.cfg.seed + start))
            self._input = (dataset_fn, start, iter(dist))
        iterator = self._input[2]
        self._loop = self._loop or self._make_loop()
        t0 = time.monotonic()
        mean_loss, first_bad = self._loop(iterator, tf.constant(num_steps))
        mean_loss, first_bad = float(mean_loss), int(first_bad)
        seconds = time.monotonic() - t0
        self._input = (dataset_fn, self.step, iterator)
        self.loop_seconds.append((num_steps, seconds))
        if first_bad >= 0:
            raise TrainingDiverged(
                f"loss became {'NaN' if math.isnan(mean_loss) else 'non-finite'} at step "
                f"{first_bad} (loop of steps {start + 1}-{self.step}); not saving: the last "
                f"good checkpoint is {self.checkpoints.latest or 'none'}. Lower "
                "train.base_lr, add train.warmup_steps or set train.clip_norm.")
        self.history.append((self.step, mean_loss))
        return mean_loss, seconds


def compile_seconds(loop_seconds) -> float:
    """The first loop's time beyond its steps at the later loops' median time per step (the
    trace and compile of the multi-step function); all of it when there is no later loop."""
    if not loop_seconds:
        return 0.0
    per_step = sorted(dt / n for n, dt in loop_seconds[1:])
    n, dt = loop_seconds[0]
    return max(0.0, dt - n * per_step[len(per_step) // 2]) if per_step else dt

