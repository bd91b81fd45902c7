"""A trial's record: the user attributes a worker stores on an Optuna trial, by name and type.

``TrialRecord.of(trial)`` reads them (a field the trial does not hold is None);
``record.put(trial, budget=120, ...)`` and ``record.attrs(...)`` (for ``enqueue_trial``) write
them, and refuse a name that is not a field, so a misspelt key fails where it is written
instead of reading back as missing. Optuna keeps them as JSON, in the study's storage.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    # where it comes from (set before any training)
    origin: int | None = None  # the trial whose folder it uses (itself or the one it retries)
    resume_of: int | None = None  # re-queued by an interrupted worker: the trial it resumes
    reference: str | None = None  # an enqueued reference model's name
    worker: str | None = None  # host/index of the worker that ran it
    gin: str | None = None  # its gin file, and the text written there
    gin_text: str | None = None
    trial_dir: str | None = None
    # what it is (trial_gin.inspect_gin), and its configuration's digest
    params: int | None = None
    flops_forward: float | None = None
    flops_train_step: float | None = None
    arch_hash: str | None = None
    config_hash: str | None = None
    worker_rss_mb: int | None = None
    # how far it got
    rungs_passed: int | None = None  # rungs promoted from (a retry does not judge them again)
    budget: int | None = None  # the last rung's steps
    top1_per_step: list | None = None
    rung_seconds: dict | None = None  # {budget: RungResult.seconds}
    seconds: float | None = None
    # why it ended (study.end_reason)
    repeat_of: int | None = None  # an exact repeat: the trial whose result it took
    rejected: str | None = None  # its point could not be built
    error: str | None = None  # its rung crashed: the error line
    diverged: str | None = None  # its loss diverged (scored 0)
    interrupted: str | None = None  # SIGTERM or Ctrl-C: re-queued

    @classmethod
    def of(cls, trial) -> "TrialRecord":
        """The record of an Optuna trial (live or frozen); attributes it does not know are
        ignored."""
        return cls(**{k: v for k, v in trial.user_attrs.items() if k in FIELDS})


FIELDS = frozenset(f.name for f in dataclasses.fields(TrialRecord))


def attrs(**fields) -> dict:
    """``fields`` checked against ``TrialRecord``: user attributes for ``enqueue_trial``."""
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise KeyError(f"not fields of a trial record: {', '.join(unknown)}")
    return fields


def put(trial, **fields):
    """Stores ``fields`` (``TrialRecord``'s names) on a live trial."""
    for key, value in attrs(**fields).items():
        trial.set_user_attr(key, value)
