"""A search worker: samples, validates, deduplicates and trains trials until the study is done.

Per trial: the sampled point becomes a gin file (``gins/trial_<origin>.gin``); the model it
describes is built once in the worker (parameter count, FLOPs per image, canonical hash; a
point that cannot be built is rejected with the reason, untrained); an exact repeat of an
evaluated configuration takes its result instead of training; otherwise each ASHA rung runs in
the worker's long-lived rung runner (``runner.Runner``, one child process that imports
TensorFlow once) in ``<trials_dir>/<origin>/steps_<budget>``, answers with a ``RungResult``
(``<study_dir>/rungs/``; its output goes to ``<study_dir>/logs/``) and is pruned or promoted.
A retried trial (dead worker, or an interrupted one) uses its original's folder and so resumes
from its last checkpoint.

Faults: a rung that crashes, or whose runner is killed (out of memory), fails its trial alone,
with the error recorded, and the worker goes on (with a new runner). A rung folder that another
live run holds is waited for, never trained beside (nor are its checkpoints removed); a trial
that another worker failed meanwhile (its heartbeat looked stale) is left to that worker's
retry at the end of the rung. A rung whose loss
diverges scores top-1 0 (attribute ``diverged``): a result the sampler learns from, not a
fault. SIGTERM or Ctrl-C: the running rung saves a checkpoint and stops, the trial is re-queued
to resume, and the worker exits 0.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time

from tpu_convrnn import lazy
from tpu_convrnn.progress import format_hms
from tpu_convrnn.search import record, sample, trial_gin
from tpu_convrnn.search.record import TrialRecord
from tpu_convrnn.search.study import origin_number, run_trials
from tpu_convrnn.search.rung import budget_settings, finished_metrics, rss_mb
from tpu_convrnn.search.runner import Runner

# Child lines echoed to the worker's console (the rest goes to the trial's log only).
_ECHO = ("step ", "resumed from", "eval at", "error", "checkpoint ", "Traceback")

log = logging.getLogger(__name__)
model_dir_lib = lazy("tpu_convrnn.training.model_dir")  # (TensorFlow: in the worker, once used)


class TrialFailed(Exception):
    """The trial's rung crashed, was killed, or its point was rejected (reason in the text)."""


class TrialRequeued(Exception):
    """SIGTERM / Ctrl-C: the trial was re-queued and the worker should stop."""


class TakenOver(Exception):
    """Another worker failed this worker's trial meanwhile (its heartbeat looked stale) and
    retries it: this worker stops working on it."""


def _try_put(trial, **fields):
    """``record.put`` that gives up quietly when the trial is no longer this worker's (failed
    by another worker meanwhile)."""
    try:
        record.put(trial, **fields)
    except Exception:  # noqa: BLE001  (optuna UpdateFinishedTrialError, storage errors)
        pass


class Worker:
    """Runs trials of ``study`` (see the module docstring)."""

    def __init__(self, study, space, cfg, study_dir, trials_dir, split_gin, warmup_fraction,
                 worker_index=0, tpu=None):
        self.study, self.space, self.cfg = study, space, cfg
        self.study_dir, self.trials_dir, self.split_gin = study_dir, trials_dir, split_gin
        self.warmup_fraction = warmup_fraction
        self.index, self.tpu = worker_index, tpu
        self.runner = Runner(tpu, recycle_rungs=cfg.recycle_rungs,
                             recycle_rss_mb=cfg.recycle_rss_mb, hang_timeout=cfg.hang_timeout)
        self.stopping = False
        self.single = len(cfg.objectives) == 1

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        if not self.stopping:
            log.info(f"{signal.Signals(signum).name}: the running rung saves and stops; its "
                     "trial is re-queued")
        self.stopping = True
        self.runner.signal(signal.SIGTERM)

    # ------------------------------------------------------------------ the loop
    def run(self, n_trials: int) -> str:
        """Runs trials until ``n_trials`` are finished, as many crashed, or a signal; returns
        which (``study.run_trials``)."""
        self.runner.start()  # (its imports overlap the first trial's sampling and checks)
        try:
            return run_trials(self.study, self.attempt, n_trials, self.after_trial,
                              lambda: self.stopping)
        finally:
            self.runner.close()

    def attempt(self, trial):
        """One trial: ``(state, values)`` for Optuna's ``tell``; why it ended is in its
        attributes (``study.end_reason``)."""
        import optuna
        from optuna.trial import TrialState
        try:
            return TrialState.COMPLETE, self.objective(trial)
        except optuna.TrialPruned:
            return TrialState.PRUNED, None
        except (TrialFailed, TrialRequeued, TakenOver):
            return TrialState.FAIL, None
        except BaseException as e:  # a bug of the worker: the trial fails (run_trials tells
            _try_put(trial, error=f"worker error: {type(e).__name__}: {e}"[:500])  # FAIL)
            raise

    # ------------------------------------------------------------------ the objective
    def objective(self, trial):
        origin = origin_number(trial)
        params = sample.suggest(trial, self.space)
        gin_path = os.path.join(self.study_dir, "gins", f"trial_{origin:05d}.gin")
        trial_dir = f"{self.trials_dir}/{origin:05d}"
        # the trial's own gin file trains it to the full budget
        bindings = {**sample.bindings(self.space, params),
                    **budget_settings(self.cfg.max_steps, self.warmup_fraction,
                                      self.cfg.checkpoint_every)}
        header = (f"Trial {origin} of study {self.study.study_name}: train it as it is with\n"
                  f"  python -m tpu_convrnn.main --gin_file={gin_path} --mode=train_and_eval "
                  f"--model_dir=DIR")
        text = trial_gin.write_trial_gin(gin_path, self.space, bindings, self.split_gin, header)
        record.put(trial, gin=gin_path, gin_text=text, trial_dir=trial_dir, origin=origin,
                   worker=f"{socket.gethostname()}/{self.index}")
        kind = "retry of trial %d" % origin if origin != trial.number else \
            TrialRecord.of(trial).reference or "sampled"
        try:
            info = trial_gin.inspect_gin(gin_path, self.space.filters_fit_maps)
        except trial_gin.Rejected as e:
            record.put(trial, rejected=str(e))
            log.info(f"trial {trial.number} ({kind}): rejected before training: {e}")
            raise TrialFailed(f"rejected: {e}") from None
        config_hash = trial_gin.digest({"arch": info["arch_hash"], "train": {
            k: v for k, v in bindings.items() if k.startswith("train.")}})
        record.put(trial, **info, config_hash=config_hash, worker_rss_mb=round(rss_mb()))
        log.info(f"trial {trial.number} ({kind}): {info['params']:,} params, "
                 f"{info['flops_train_step'] / 1e9:.3g} GFLOP per training image")
        repeat = self._repeat_of(trial, config_hash)
        if repeat is not None:
            return self._copy(trial, repeat)
        return self._train(trial, trial_dir, gin_path, info)

    def _objectives(self, top1, info):
        values = {"top1": top1, "params": info["params"], "flops": info["flops_train_step"]}
        return tuple(values[o] for o in self.cfg.objectives) if not self.single else top1

    def _train(self, trial, trial_dir, gin_path, info):
        import optuna
        budgets = self.cfg.budgets()
        # a retry keeps the rungs its original had passed (they are not judged again)
        passed = TrialRecord.of(trial).rungs_passed or 0
        t0, top1 = time.monotonic(), None
        for k, budget in enumerate(budgets):
            if self.stopping:
                self._requeue(trial)
            self._check_mine(trial)
            r0 = time.monotonic()
            metrics = self._run_rung(trial, f"{trial_dir}/steps_{budget}", gin_path, budget,
                                     f"rung {k + 1}/{len(budgets)}")
            top1 = float(metrics["top1"])
            record.put(trial, budget=budget,
                       top1_per_step=[round(a, 4) for a in metrics["top1_per_step"]])
            dt = time.monotonic() - r0
            if self.single:
                trial.report(top1, budget)
                if k + 1 < len(budgets) and k >= passed and trial.should_prune():
                    log.info(f"trial {trial.number} rung {k + 1}/{len(budgets)} ({budget} steps):"
                             f" top1 {top1:.4f} in {dt:.0f} s; pruned")
                    raise optuna.TrialPruned()
            if k + 1 < len(budgets) and k >= passed:
                record.put(trial, rungs_passed=k + 1)
            rest = sum(budgets[k + 1:]) / budget * dt
            log.info(f"trial {trial.number} rung {k + 1}/{len(budgets)} ({budget} steps): top1 "
                     f"{top1:.4f} in {dt:.0f} s" + (f"; promoted, trial ETA {format_hms(rest)}"
                                                   if k + 1 < len(budgets) else ""))
        record.put(trial, seconds=round(time.monotonic() - t0, 1))
        return self._objectives(top1, info)

    def _run_rung(self, trial, model_dir, gin_path, budget, what, poll=5.0):
        name = f"trial_{origin_number(trial):05d}_steps_{budget}"
        log_path = os.path.join(self.study_dir, "logs", f"{name}.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        while True:
            self._wait_for_folder(trial, model_dir, poll)
            done = finished_metrics(model_dir, budget)
            if done is not None:
                log.info(f"trial {trial.number} {what}: already evaluated at step {budget}")
                return done
            log.info(f"trial {trial.number} {what}: training {budget} steps in {model_dir} "
                     f"(log {log_path})")
            result = self.runner.run(
                os.path.join(self.study_dir, "rungs", f"{name}.trial_{trial.number:05d}.json"),
                log_path, f"t{trial.number} {budget}:", _ECHO, gin_file=gin_path,
                model_dir=model_dir, steps=budget, checkpoint_every=self.cfg.checkpoint_every,
                warmup_fraction=self.warmup_fraction)
            if result.status != "busy":
                break
            # another run took the folder between the check above and the rung's start
            log.info(f"trial {trial.number} {what}: {result.error}; waiting for it to end")
            time.sleep(poll)
        self._check_mine(trial)  # (failed by another worker while the rung ran: stop here)
        record.put(trial, rung_seconds={**(TrialRecord.of(trial).rung_seconds or {}),
                                        str(budget): result.seconds})
        if result.status == "preempted" or (self.stopping and result.status != "done"):
            self._requeue(trial)
        if result.status == "diverged":  # a (bad) result: the worst top-1, so the sampler
            record.put(trial, diverged=result.error)  # learns from it
            log.info(f"trial {trial.number} {what}: diverged, scored top1 0: {result.error}")
            return {"top1": 0.0, "top1_per_step": []}
        if result.status == "failed":
            record.put(trial, error=result.error)
            log.info(f"trial {trial.number} {what}: failed: {result.error} (log {log_path})")
            raise TrialFailed(result.error)
        return {"top1": result.top1, "top1_per_step": result.top1_per_step}

    def _wait_for_folder(self, trial, model_dir, poll=5.0):
        """Waits while a live run holds the rung's folder (the attempt this trial retries,
        still training in a worker that had lost the database): a retry never trains beside
        it, and takes its result if it finishes the rung. A stop (SIGTERM) re-queues the trial
        instead."""
        said = False
        while True:
            if self.stopping:
                self._requeue(trial)
            holder = model_dir_lib.live_holder(model_dir)
            if holder is None:
                return
            if not said:
                log.info(f"trial {trial.number}: {model_dir} is held by pid {holder['pid']} on "
                         f"host {holder['host']} (an earlier attempt, still running); waiting "
                         "for it to end")
                said = True
            time.sleep(poll)

    def _check_mine(self, trial):
        """TakenOver if another worker failed this trial meanwhile (it retries it)."""
        from optuna.trial import TrialState
        state = self.study._storage.get_trial(trial._trial_id).state
        if state != TrialState.RUNNING:
            log.info(f"trial {trial.number}: {state.name} in the study (failed by another "
                     "worker while this one could not reach the database); it is retried "
                     "there, this worker stops working on it")
            raise TakenOver(f"trial {trial.number}")

    def _requeue(self, trial):
        origin = origin_number(trial)
        _try_put(trial, interrupted="SIGTERM or Ctrl-C; re-queued")
        self.study.enqueue_trial(trial.params, user_attrs=record.attrs(
            resume_of=origin, rungs_passed=TrialRecord.of(trial).rungs_passed or 0))
        log.info(f"trial {trial.number}: stopped; re-queued to resume from its checkpoints "
                 f"({self.trials_dir}/{origin:05d})")
        raise TrialRequeued(f"trial {trial.number} re-queued")

    # ------------------------------------------------------------------ repeats
    def _repeat_of(self, trial, config_hash, poll=5.0):
        """An earlier trial with the same configuration (finished: its result is copied;
        running: wait for it), or None."""
        from optuna.trial import TrialState
        mine = origin_number(trial)
        waited = False
        while True:
            same = [t for t in self.study.get_trials(deepcopy=False, states=(
                TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
                    if t.number < trial.number and TrialRecord.of(t).config_hash == config_hash
                    and origin_number(t) != mine]
            finished = [t for t in same if t.state != TrialState.RUNNING]
            if finished:
                return finished[0]
            if not same or self.stopping:
                return None
            if not waited:
                log.info(f"trial {trial.number}: same configuration as running trial "
                         f"{same[0].number}; waiting for its result")
                waited = True
            time.sleep(poll)

    def _copy(self, trial, earlier):
        import optuna
        from optuna.trial import TrialState
        took = TrialRecord.of(earlier)
        record.put(trial, repeat_of=earlier.number, **{
            k: getattr(took, k) for k in ("budget", "top1_per_step")
            if getattr(took, k) is not None})
        if self.single:
            for step, value in sorted(earlier.intermediate_values.items()):
                trial.report(value, step)
        log.info(f"trial {trial.number}: exact repeat of trial {earlier.number} "
                 f"({earlier.state.name}); its result is taken, nothing trained")
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned()
        return earlier.value if self.single else tuple(earlier.values)

    # ------------------------------------------------------------------ disk
    def after_trial(self, study, frozen):
        """Callback after each trial: progress line, and checkpoints removed from finished
        trials outside the top ``keep_top_k`` (and from the ones this trial pushed out)."""
        from optuna.trial import TrialState
        trials = study.get_trials(deepcopy=False)
        complete = sorted((t for t in trials if t.state == TrialState.COMPLETE
                           and TrialRecord.of(t).diverged is None),  # (scored 0; nothing to keep)
                          key=lambda t: -t.values[0])
        keep = {origin_number(t) for t in complete[:self.cfg.keep_top_k]}
        keep |= {origin_number(t) for t in trials
                 if t.state in (TrialState.RUNNING, TrialState.WAITING)}
        keep |= {TrialRecord.of(t).resume_of for t in trials
                 if t.state == TrialState.WAITING and TrialRecord.of(t).resume_of is not None}
        candidates = {origin_number(frozen)} | {
            origin_number(t) for t in complete[self.cfg.keep_top_k:self.cfg.keep_top_k + 8]}
        for origin in sorted(candidates - keep):
            _remove_checkpoints(f"{self.trials_dir}/{origin:05d}")
        if frozen.state in (TrialState.COMPLETE, TrialState.PRUNED) and complete:
            best = complete[0]
            value = frozen.values[0] if frozen.values else float("nan")
            log.info(f"trial {frozen.number} {frozen.state.name.lower()}: top1 {value:.4f} at "
                     f"{TrialRecord.of(frozen).budget or '?'} steps; best so far "
                     f"{best.values[0]:.4f} (trial {best.number}); "
                     f"{sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)}"
                     " finished")


def _remove_checkpoints(trial_dir: str):
    """Removes the checkpoints of a trial's rungs, except those of a rung that a live run
    holds (another attempt still training there)."""
    import tensorflow as tf
    if not tf.io.gfile.exists(trial_dir):
        return
    for rung in tf.io.gfile.listdir(trial_dir):
        rung_dir = f"{trial_dir}/{rung.rstrip('/')}"
        path = f"{rung_dir}/checkpoints"
        if tf.io.gfile.exists(path) and model_dir_lib.live_holder(rung_dir) is None:
            tf.io.gfile.rmtree(path)
