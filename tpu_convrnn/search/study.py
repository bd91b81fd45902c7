"""The study: its storage, sampler and pruner, the space it was created with, and its data split.

* Storage: an SQLite file in the study folder by default (one machine, a few workers), or any
  SQLAlchemy URL (``postgresql://user@host/db`` for many workers on many hosts). A password is
  read from ``$TPU_CONVRNN_STORAGE_PASSWORD`` or a file, never from the command line, and every
  URL this package prints is masked (``mask_url``). Heartbeats: a RUNNING trial whose worker
  stopped beating for ``grace_period`` is failed by the next worker that starts a trial and
  re-queued (``RetryHeartbeatStaleTrialCallback``); the re-queued trial resumes from the
  checkpoints of its original (``origin_number``).
* Sampler: multivariate, grouped TPE with the constant liar, seeded from the study's seed, the
  worker's index and the number of trials the study holds when the worker joins (a restarted
  worker does not replay its samples); pruner: ASHA
  (``SuccessiveHalvingPruner``) over training steps.
* The space (and the study settings that shape the results) is stored with the study; a worker
  joining with a different one is refused, naming what differs.
* The objective's data: ``study.minival_examples`` training examples held out as whole shards
  from the end of the training files (``data_split.gin`` in the study folder); the official
  evaluation set is never read.
"""
from __future__ import annotations

import collections
import functools
import json
import logging
import os
import random
import time

from tpu_convrnn import lazy
from tpu_convrnn.files import error_reason, write_atomic
from tpu_convrnn.search import record
from tpu_convrnn.search.trial_gin import gin_value
from tpu_convrnn.search.config import SearchSpace, StudyConfig
from tpu_convrnn.search.heartbeat import Heartbeat
from tpu_convrnn.search.record import TrialRecord

log = logging.getLogger(__name__)
records = lazy("tpu_convrnn.data.records")  # (TensorFlow: to count the minival's examples)

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


def _connection_lost(e: BaseException) -> bool:
    """Whether ``e`` (or what Optuna wrapped in it) is a lost or refused database connection:
    an outage to wait out, not a fault of the call."""
    from sqlalchemy import exc
    for x in (e, e.__cause__, e.__context__):
        if isinstance(x, (exc.OperationalError, exc.InterfaceError)) or (
                isinstance(x, exc.DBAPIError) and x.connection_invalidated):
            return True
    return False


# The storage calls a worker makes; each is retried through an outage (record_heartbeat is
# not: the heartbeat thread retries at its next beat).
_RETRIED = ("create_new_study", "create_new_trial", "get_all_studies", "get_all_trials",
            "get_best_trial", "get_n_trials", "get_study_directions", "get_study_id_from_name",
            "get_study_name_from_id", "get_study_system_attrs", "get_study_user_attrs",
            "get_trial", "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
            "get_trial_param", "get_trial_params", "get_trial_system_attrs",
            "get_trial_user_attrs", "set_study_system_attr", "set_study_user_attr",
            "set_trial_intermediate_value", "set_trial_param", "set_trial_state_values",
            "set_trial_system_attr", "set_trial_user_attr", "_get_stale_trial_ids")


def _retrying(base_class, name):
    method = getattr(base_class, name)

    def call(self, *args, **kwargs):
        first = None
        while True:
            try:
                result = method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001  (only a lost connection is retried)
                if not _connection_lost(e) or self.patience <= 0:
                    raise
                now = time.monotonic()
                if first is None:
                    first = now
                    if not self._down:
                        self._down = True
                        text = _scrub(error_reason(e.__cause__ or e), self.url)
                        log.warning(f"the study storage {mask_url(self.url)} cannot be "
                                    f"reached ({text[:160]}); retrying for up to "
                                    f"{self.patience:.0f} s")
                if now - first > self.patience:
                    raise
                time.sleep(min(2.0, self.patience / 10))
                continue
            if self._down and first is not None:
                self._down = False
                log.info(f"the study storage answers again (after "
                         f"{time.monotonic() - first:.0f} s)")
            return result
    call.__name__ = name
    return call


@functools.cache
def _retrying_storage_class():
    from optuna.storages import RDBStorage

    class RetryingRDBStorage(RDBStorage):
        """``RDBStorage`` whose calls wait out a lost database connection (a server restart, a
        network blip) for up to ``patience`` seconds, saying so once, instead of failing the
        worker at its next call."""
        patience, url, _down = 0.0, "", False
    for name in _RETRIED:
        setattr(RetryingRDBStorage, name, _retrying(RDBStorage, name))
    return RetryingRDBStorage


def _immediate_transactions(engine):
    """Makes every transaction on an SQLite ``engine`` start with ``BEGIN IMMEDIATE``.

    SQLite ignores ``SELECT ... FOR UPDATE``, and Python's sqlite3 opens a transaction only at
    the first write: Optuna's claim of a waiting trial (read that it is WAITING, then set it
    RUNNING) could then succeed in two workers at once, and both trained the same retry in one
    checkpoint folder. ``BEGIN IMMEDIATE`` takes the database's write lock before the read, so
    each read-then-write is atomic (a second worker waits, up to the connection's timeout)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None  # (the transactions are begun below)

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    engine.dispose()  # (connections made while Optuna set the database up predate the hooks)


def open_storage(url: str, cfg: StudyConfig, with_heartbeat: bool = True, attempts: int = 3):
    """An ``RDBStorage`` on ``url`` with heartbeats, retries of stale trials, and calls that
    wait out a lost connection for up to ``cfg.grace_period`` (said in the log);
    ValueError naming the (masked) URL if it cannot be reached."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
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
    storage_class = _retrying_storage_class()
    for attempt in range(attempts):
        try:
            storage = storage_class(url, engine_kwargs=engine, **kwargs)
            if url.startswith("sqlite"):
                _immediate_transactions(storage.engine)
            # an outage shorter than the grace period is waited out: it fails no live trial
            storage.patience, storage.url = float(cfg.grace_period), url
            return storage
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
    rec = TrialRecord.of(trial)
    for number in (rec.resume_of, rec.origin):
        if number is not None:
            return int(number)
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
    if cfg.sampler != "tpe":  # (studies stored before the choice existed are TPE's)
        desc["study"]["sampler"] = cfg.sampler
    return json.loads(json.dumps(desc))


def differences(a, b, prefix="") -> list:
    """The dotted keys at which two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if a == b else [prefix]


def listed(keys, most: int = 8) -> str:
    """``differences``' keys for a one-line error: the first ``most``, then ``...``."""
    return ", ".join(keys[:most]) + (" ..." if len(keys) > most else "")


def open_study(space: SearchSpace, cfg: StudyConfig, storage, name: str,
               worker_index: int = 0, space_file: str = "the space"):
    """Creates or joins the study ``name``. Returns ``(study, created)``; ValueError if the
    stored space differs from ``space``."""
    import numpy as np
    import optuna
    single = len(cfg.objectives) == 1

    def make(seed):
        if cfg.sampler == "random":
            return optuna.samplers.RandomSampler(seed=int(seed))
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=True, seed=int(seed),
            n_startup_trials=cfg.n_startup_trials)
    sampler = make(cfg.seed + worker_index)
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=cfg.min_steps, reduction_factor=cfg.reduction_factor) if single else \
        optuna.pruners.NopPruner()
    directions = ["maximize"] + ["minimize"] * (len(cfg.objectives) - 1)
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                pruner=pruner, directions=directions, load_if_exists=True)
    # The sampler's seed: the study's, the worker's index and the trials the study holds now,
    # so that a worker restarted with the same index does not replay its samples.
    held = len(study.get_trials(deepcopy=False))
    seed = np.random.SeedSequence([cfg.seed, worker_index, held]).generate_state(1)[0]
    study.sampler = make(seed)
    desc = stored_description(space, cfg)
    stored = study.user_attrs.get("description")
    if stored is None:
        study.set_user_attr("description", desc)
        study.set_metric_names([f"minival {o}" if o == "top1" else o for o in cfg.objectives])
        return study, True
    if stored != desc:
        diff = differences(stored, desc)
        raise ValueError(
            f"{space_file}: study {name!r} was created with another space or settings (differs "
            f"in: {listed(diff)}); give the original space file and settings, or another "
            "--study_name")
    return study, False


def enqueue_references(study, params_by_name: dict):
    for name, params in params_by_name.items():
        study.enqueue_trial(params, user_attrs=record.attrs(reference=name), skip_if_exists=True)


# ---------------------------------------------------------------------------------- data
def prepare_split(study_dir: str, data, minival_examples: int) -> str:
    """Writes (once) ``<study_dir>/data_split.gin``: the training shards without the last ones,
    which hold at least ``minival_examples`` examples and become the evaluation set. ``data``:
    the trial recipe's ``DataConfig``."""
    path = os.path.join(study_dir, SPLIT_GIN)
    if os.path.exists(path):
        check_split(path, data)
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
    write_atomic(path, "\n".join([
        f"# The search's data: {len(train)} training shards, and {len(held)} held-out shards "
        f"({count} examples) of the training files as its evaluation set (minival).",
        "data.source = 'tfrecord'",
        f"data.train_pattern = {gin_value(','.join(train))}",
        f"data.eval_pattern = {gin_value(','.join(held))}",
        f"data.num_classes = {data.num_classes}",
        f"data.label_offset = {data.label_offset}", ""]))
    return path


def check_split(path: str, data):
    """The files an existing ``data_split.gin`` names are all there (a study resumed on another
    machine, or after its data cache was removed): images the recipe generates (digit debris,
    the embedded digits; the same settings give the same files) are written again first;
    ValueError naming the split file and the first missing file otherwise, before any trial
    reads them. One listing per folder, not a call per file (ImageNet has 1,024 shards)."""
    import ast
    import tensorflow as tf
    data.resolved()  # (writes generated images that are missing; else only checks settings)
    named = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(" = ")
            if key in ("data.train_pattern", "data.eval_pattern"):
                named[key] = ast.literal_eval(value.strip()).split(",")
    contents = {}  # folder -> its file names (the training and minival shards share one)
    for key, files in named.items():
        for file in files:
            folder = os.path.dirname(file)
            if folder not in contents:
                contents[folder] = set(tf.io.gfile.listdir(folder)) \
                    if tf.io.gfile.isdir(folder) else set()
            if os.path.basename(file) not in contents[folder]:
                raise ValueError(f"{path}: {key} names {file}, which is missing (the study's "
                                 "data moved or its cache was removed); restore it, or start "
                                 "the study in a new --study_dir")


FINISHED_STATES = ("COMPLETE", "PRUNED")


def end_reason(trial) -> str:
    """Why a trial ended, from its state and the attributes the worker records: ``complete``,
    ``diverged`` (scored 0), ``repeat`` (an earlier trial's result taken), ``pruned``,
    ``rejected`` (its point could not be built), ``crashed`` (``error`` holds the line),
    ``interrupted`` (SIGTERM or Ctrl-C; re-queued), ``stale`` (failed by another worker: its own
    had died or lost the database for longer than the grace period; re-queued), or
    ``running`` / ``waiting``."""
    state, rec = trial.state.name, TrialRecord.of(trial)
    if state == "COMPLETE":
        return "diverged" if rec.diverged is not None else "repeat" \
            if rec.repeat_of is not None else "complete"
    if state == "FAIL":
        for reason, value in (("interrupted", rec.interrupted), ("rejected", rec.rejected),
                              ("crashed", rec.error)):
            if value is not None:
                return reason
        return "stale"
    return state.lower()


def end_reason_counts(reasons) -> str:
    """``'5 pruned, 4 complete'``: ``end_reason``s counted, most first."""
    counts = collections.Counter(reasons)
    return ", ".join(f"{n} {why}" for why, n in sorted(counts.items(),
                                                       key=lambda kv: (-kv[1], kv[0])))


def run_trials(study, attempt, n_trials: int, after=None, stopping=lambda: False):
    """Optuna's ask-and-tell loop of a worker: fail stale trials (and re-queue them, by the
    storage's callback), ask, ``attempt(trial) -> (state, values)`` under this worker's own
    ``Heartbeat``, tell (``skip_if_finished``: a trial failed by another worker meanwhile is
    left as it is, and its result dropped with a line saying so), ``after(study, frozen)``; a
    trial whose ``attempt`` raises is told FAIL and the exception goes on.
    Stops when ``n_trials`` trials are finished (complete or pruned) by training (an exact
    repeat, which takes an earlier trial's result and trains nothing, does not count) and no
    retry of a failed or interrupted trial waits (it would be left behind), when as
    many have crashed, when as many were repeats (the space is nearly exhausted), or when
    ``stopping()``. Returns why it stopped: ``done``, ``crashes``, ``repeats`` or
    ``stopped``."""
    import warnings

    import optuna
    storage = study._storage  # (Optuna keeps the study's storage here; no public accessor)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    while True:
        if interval:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.name in FINISHED_STATES]
        repeats = sum(TrialRecord.of(t).repeat_of is not None for t in finished)
        retries = [t for t in trials if t.state.name == "WAITING" and origin_number(t) != t.number]
        if len(finished) - repeats >= n_trials and not retries:
            return "done"
        crashes = sum(end_reason(t) == "crashed" for t in trials)
        if crashes >= n_trials:
            log.warning(f"{crashes} trials crashed: stopping (see the trial logs)")
            return "crashes"
        if repeats >= n_trials:
            log.warning(f"{repeats} trials were exact repeats of earlier ones: the space is "
                        "nearly exhausted; stopping")
            return "repeats"
        if stopping():
            return "stopped"
        with warnings.catch_warnings():  # ("supposed to be used with Study.optimize": the
            warnings.filterwarnings("ignore", "Heartbeat of storage")  # beat is ours, below)
            trial = study.ask()
        with Heartbeat(storage, trial._trial_id, interval or 0):
            try:
                state, values = attempt(trial)
            except BaseException:  # (a bug, KeyboardInterrupt): the trial fails, then raise
                study.tell(trial, None, optuna.trial.TrialState.FAIL, skip_if_finished=True)
                raise
        frozen = study.tell(trial, values, state, skip_if_finished=True)
        if frozen.state != state:
            log.warning(f"trial {trial.number} was failed by another worker while it ran here "
                        "(its heartbeat had stopped for longer than the grace period) and is "
                        "retried there; this worker's result for it is dropped")
        if after is not None:
            after(study, frozen)
