"""The study: its storage, sampler and pruner, the space it was created with, and its data split.

* Storage: an SQLite file in the study folder by default (one machine, a few workers), or any
  SQLAlchemy URL (``postgresql://user@host/db`` for many workers on many hosts). A password is
  read from ``$TPU_CONVRNN_STORAGE_PASSWORD`` or a file, never from the command line, and every
  URL this package prints is masked (``mask_url``). Heartbeats: a RUNNING trial whose worker
  stopped beating for ``grace_period`` is failed by the next worker that starts a trial and
  re-queued (``RetryHeartbeatStaleTrialCallback``); the re-queued trial resumes from the
  checkpoints of its original (``origin_number``).
* Sampler: multivariate, grouped TPE with the constant liar, seeded per worker; pruner: ASHA
  (``SuccessiveHalvingPruner``) over training steps.
* The space (and the study settings that shape the results) is stored with the study; a worker
  joining with a different one is refused, naming what differs.
* The objective's data: ``study.minival_examples`` training examples held out as whole shards
  from the end of the training files (``data_split.gin`` in the study folder); the official
  evaluation set is never read.
"""
from __future__ import annotations

import json
import os
import random
import time

from tpu_convrnn.search.config import SearchSpace, StudyConfig

PASSWORD_ENV = "TPU_CONVRNN_STORAGE_PASSWORD"
SPLIT_GIN = "data_split.gin"


# ---------------------------------------------------------------------------------- storage
def storage_url(url: str | None, study_dir: str, password_file: str | None = None) -> str:
    """The full storage URL: ``url`` (default: SQLite in ``study_dir``) with the password from
    ``password_file`` or ``$TPU_CONVRNN_STORAGE_PASSWORD`` filled in."""
    from sqlalchemy.engine import make_url
    if not url:
        return f"sqlite:///{os.path.abspath(os.path.join(study_dir, 'study.db'))}"
    try:
        parsed = make_url(url)
    except Exception as e:  # noqa: BLE001  (sqlalchemy.exc.ArgumentError and friends)
        raise ValueError(f"--storage {mask_url(url)!r}: not an SQLAlchemy URL ({e})") from None
    if parsed.password is not None:  # it would show in `ps` and in shell histories
        raise ValueError(f"--storage {mask_url(url)!r}: a password inside the URL; give it "
                         f"through ${PASSWORD_ENV} or --storage_password_file")
    password = None
    if password_file:
        try:
            password = open(password_file, encoding="utf-8").read().strip()
        except OSError as e:
            raise ValueError(f"--storage_password_file {password_file!r}: {e.strerror}") from None
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs, errors and records)."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (unparseable: hide everything between :// and @)
        head, sep, tail = url.partition("://")
        return head + sep + ("***@" + tail.split("@", 1)[1] if "@" in tail else tail)


def _scrub(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001
        password = None
    return text.replace(password, "***") if password else text


def open_storage(url: str, cfg: StudyConfig, with_heartbeat: bool = True, attempts: int = 3):
    """An ``RDBStorage`` on ``url`` with heartbeats and retries of stale trials; ValueError
    naming the (masked) URL if it cannot be reached."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    # Heartbeats and their retry callback are marked experimental; they are what we rely on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else \
        {"pool_pre_ping": True}  # a dropped connection is replaced on the next use
    if url.startswith("sqlite"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".", exist_ok=True)
    kwargs = {}
    if with_heartbeat:
        kwargs = dict(heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                          max_retry=cfg.max_retry))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker reports failures itself
    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=engine, **kwargs)
        except Exception as e:  # noqa: BLE001  (sqlalchemy OperationalError, driver errors)
            # Workers starting together on a fresh database race to create Optuna's tables
            # (a unique violation for all but one): the next attempt finds them.
            error = e
            time.sleep(1.0 + random.random())
    text = str(error).strip()
    first = _scrub(text.splitlines()[0] if text else type(error).__name__, url)
    raise ValueError(f"cannot reach the study storage {mask_url(url)}: {first}") from None


def origin_number(trial) -> int:
    """The trial number whose folder this trial uses: itself, or the trial it retries. A trial
    re-queued by an interrupted worker carries ``resume_of``; one re-queued after its worker's
    heartbeat ran out inherits the user attributes of the failed one, ``origin`` among them
    (set before any training), and its stored record names the failed trial."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    for key in ("resume_of", "origin"):
        if key in trial.user_attrs:
            return int(trial.user_attrs[key])
    if isinstance(trial, optuna.trial.FrozenTrial):
        number = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
        if number is not None:
            return int(number)
    return trial.number


# ---------------------------------------------------------------------------------- study
def stored_description(space: SearchSpace, cfg: StudyConfig) -> dict:
    """What a joining worker must agree on: the space and the settings that shape results."""
    desc = {"space": space.as_data(),
            "study": {"objectives": list(cfg.objectives), "budgets": cfg.budgets(),
                      "minival_examples": cfg.minival_examples}}
    return json.loads(json.dumps(desc))


def _differences(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if a == b else [prefix]


def open_study(space: SearchSpace, cfg: StudyConfig, storage, name: str,
               worker_index: int = 0, space_file: str = "the space"):
    """Creates or joins the study ``name``. Returns ``(study, created)``; ValueError if the
    stored space differs from ``space``."""
    import optuna
    single = len(cfg.objectives) == 1
    sampler = optuna.samplers.TPESampler(
        multivariate=True, group=True, constant_liar=True, seed=cfg.seed + worker_index,
        n_startup_trials=cfg.n_startup_trials)
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=cfg.min_steps, reduction_factor=cfg.reduction_factor) if single else \
        optuna.pruners.NopPruner()
    directions = ["maximize"] + ["minimize"] * (len(cfg.objectives) - 1)
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                pruner=pruner, directions=directions, load_if_exists=True)
    desc = stored_description(space, cfg)
    stored = study.user_attrs.get("description")
    if stored is None:
        study.set_user_attr("description", desc)
        study.set_metric_names([f"minival {o}" if o == "top1" else o for o in cfg.objectives])
        return study, True
    if stored != desc:
        diff = _differences(stored, desc)
        raise ValueError(
            f"{space_file}: study {name!r} was created with another space or settings (differs "
            f"in: {', '.join(diff[:8])}{' ...' if len(diff) > 8 else ''}); give the original "
            "space file and settings, or another --study_name")
    return study, False


def enqueue_references(study, params_by_name: dict):
    for name, params in params_by_name.items():
        study.enqueue_trial(params, user_attrs={"reference": name}, skip_if_exists=True)


# ---------------------------------------------------------------------------------- data
def prepare_split(study_dir: str, data, minival_examples: int) -> str:
    """Writes (once) ``<study_dir>/data_split.gin``: the training shards without the last ones,
    which hold at least ``minival_examples`` examples and become the evaluation set. ``data``:
    the trial recipe's ``DataConfig``."""
    from tpu_convrnn.data import records
    path = os.path.join(study_dir, SPLIT_GIN)
    if os.path.exists(path):
        return path
    data = data.resolved()
    if data.source == "fake" or not data.train_pattern:
        raise ValueError(f"the search holds out part of the training files, so it needs "
                         f"TFRecord training data (data.source = {data.source!r})")
    files = records.list_files(data.train_pattern)
    held, count = [], 0
    while count < minival_examples and len(held) < len(files) - 1:
        held.insert(0, files[len(files) - 1 - len(held)])
        count += records.count_records([held[0]])[0]
    if count < minival_examples:
        raise ValueError(f"study.minival_examples = {minival_examples}: the training files "
                         f"({data.train_pattern}) have only {count} examples outside their "
                         "first shard")
    train = files[:len(files) - len(held)]
    from tpu_convrnn.files import write_atomic
    from tpu_convrnn.search.candidate import gin_value
    write_atomic(path, "\n".join([
        f"# The search's data: {len(train)} training shards, and {len(held)} held-out shards "
        f"({count} examples) of the training files as its evaluation set (minival).",
        "data.source = 'tfrecord'",
        f"data.train_pattern = {gin_value(','.join(train))}",
        f"data.eval_pattern = {gin_value(','.join(held))}",
        f"data.num_classes = {data.num_classes}",
        f"data.label_offset = {data.label_offset}", ""]))
    return path


TAKEN_OVER = "Cannot tell a FAIL trial"


def optimize(study, objective, log, **kwargs):
    """``study.optimize(objective, **kwargs)`` that survives a takeover: when this worker's
    running trial was failed by another worker meanwhile (its heartbeat stopped, e.g. when the
    database dropped the connection of the heartbeat thread, so the trial looked stale and was
    failed and re-queued there), Optuna cannot record the result; the result is dropped with a
    line saying so and this worker goes on with the next trial."""
    while True:
        try:
            return study.optimize(objective, **kwargs)
        except (ValueError, AssertionError) as e:
            # Optuna's tell raises the ValueError; its clean-up then fails an assertion of
            # its own, with the ValueError as the context.
            if not any(str(x).startswith(TAKEN_OVER) for x in (e, e.__context__)):
                raise
            log("a trial of this worker was failed by another worker while it ran (its "
                "heartbeat had stopped, e.g. on a lost database connection) and is retried "
                "there; this worker's result for it is dropped")
