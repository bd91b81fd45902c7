r"""``python -m tpu_convrnn.search run|report``: the architecture search's command line.

    # one machine, SQLite in the study folder, two worker processes
    python -m tpu_convrnn.search run --space=gin/search/small.gin --study_dir=runs/small \
        --n_trials=12 --workers=2
    # many hosts: every process given the same PostgreSQL URL is a worker of the study
    TPU_CONVRNN_STORAGE_PASSWORD=... python -m tpu_convrnn.search run \
        --space=gin/search/median_cell.gin --study_dir=/tmp/search \
        --trials_dir=gs://BUCKET/search/trials --storage=postgresql://search@10.0.0.2/search \
        --n_trials=2000 --worker_index=3 --tpu=local
    python -m tpu_convrnn.search report --space=gin/search/small.gin --study_dir=runs/small
    # a random-search control of the same space, then both at equal compute (compare.png)
    python -m tpu_convrnn.search run --space=gin/search/small.gin --study_dir=runs/random \
        --gin_param="study.sampler = 'random'" --n_trials=12 --workers=2
    python -m tpu_convrnn.search report --space=gin/search/small.gin --study_dir=runs/small \
        --compare_with=runs/random
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (none of these loads TensorFlow: --help and argument errors come before it)
from absl import flags  # noqa: E402

from tpu_convrnn import cli, console  # noqa: E402
from tpu_convrnn.files import writable_folder  # noqa: E402
from tpu_convrnn.search import references, study as study_lib, trial_gin  # noqa: E402
from tpu_convrnn.search import report as report_lib  # noqa: E402
from tpu_convrnn.search.config import SearchSpace, StudyConfig, configured, locate  # noqa: E402
from tpu_convrnn.search.record import TrialRecord  # noqa: E402
from tpu_convrnn.search.runner import RunnerBroken  # noqa: E402
from tpu_convrnn.search.study import (end_reason, end_reason_counts, mask_url,  # noqa: E402
                                      open_storage, storage_url)
from tpu_convrnn.search.worker import Worker  # noqa: E402

log = logging.getLogger("tpu_convrnn.search")  # (not __name__: "__main__" under -m)


PROG = "python -m tpu_convrnn.search"
COMMANDS = {"run": "be a worker (or start --workers local workers) of the study until it has "
                   "--n_trials finished trials",
            "report": "print the top trials, write trials.csv, plots and the median-of-top-N "
                      "gin file"}
# The search's own flag set: tpu_convrnn.main's flags live in absl's global one.
FLAGS = flags.FlagValues()
flags.DEFINE_string("space", None, "gin file binding space.* (what is searched) and study.* "
                    "(budgets, sampler, faults); see gin/search/", flag_values=FLAGS)
flags.DEFINE_multi_string("gin_param", [], "extra space.*/study.* binding, after the file "
                          "(repeatable)", flag_values=FLAGS)
flags.DEFINE_string("study_dir", None, "local folder: trial gin files, logs, the data split, "
                    "the SQLite storage (default), the report", flag_values=FLAGS)
flags.DEFINE_string("storage", None, "SQLAlchemy URL of the study storage (default: "
                    "sqlite:///STUDY_DIR/study.db); no password here: use "
                    "$TPU_CONVRNN_STORAGE_PASSWORD or --storage_password_file",
                    flag_values=FLAGS)
flags.DEFINE_string("storage_password_file", None, "file holding the storage password",
                    flag_values=FLAGS)
flags.DEFINE_string("study_name", None, "default: study.name, else the space file's name",
                    flag_values=FLAGS)
flags.DEFINE_integer("n_trials", None, "run: trained and finished (complete or pruned) "
                     "trials of the whole study at which workers stop; exact repeats, which "
                     "train nothing, do not count", flag_values=FLAGS)
flags.DEFINE_integer("workers", 1, "run: local worker processes to start", flag_values=FLAGS)
flags.DEFINE_integer("worker_index", 0, "run: this worker's index (seeds its sampler with "
                     "study.seed + index; give each host its own)", flag_values=FLAGS)
flags.DEFINE_string("trials_dir", None, "run: where trials train (checkpoints, metrics); "
                    "default STUDY_DIR/trials; a gs:// folder for a TPU fleet, so a trial "
                    "re-queued on another host resumes", flag_values=FLAGS)
flags.DEFINE_string("tpu", None, "run: passed to each trial (e.g. 'local')", flag_values=FLAGS)
flags.DEFINE_integer("top", 5, "report: N of the top-N table and median", flag_values=FLAGS)
flags.DEFINE_string("output", None, "report: default STUDY_DIR/report", flag_values=FLAGS)
flags.DEFINE_multi_string("compare_with", [], "report: the folder of another study of the same "
                          "space and settings in SQLite (e.g. its random-search control, "
                          "--gin_param=\"study.sampler = 'random'\"); its best so far against "
                          "compute is drawn with this one's in compare.png (repeatable)",
                          flag_values=FLAGS)
REQUIRED = {"run": ("space", "study_dir", "n_trials"), "report": ("space", "study_dir")}
ONLY = {"run": ("n_trials", "workers", "worker_index", "trials_dir", "tpu"),
        "report": ("top", "output", "compare_with")}


def _help() -> str:
    """The module's docstring, the commands and every flag with its help text."""
    commands = "\n".join(f"  {name:<8}{text}" for name, text in COMMANDS.items())
    doc = f"{__doc__.strip()}\n\ncommands:\n{commands}\n\n(flags: \"run:\" and \"report:\" " \
        "mark a command's own)"
    return cli.help_text(FLAGS, doc)


def parse(argv) -> SimpleNamespace:
    """``[command, --flag=value, ...]`` -> the command and its flags' values; ValueError (one
    line) for an unknown command or flag, a missing required flag, a flag of the other
    command, or a stray argument."""
    if not argv or argv[0] not in COMMANDS:
        got = repr(argv[0]) if argv else "none"
        raise ValueError(f"expected a command, one of {', '.join(COMMANDS)} (got {got}); "
                         f"{PROG} --help lists them")
    command = argv[0]
    args, rest = cli.parse_flags(FLAGS, argv[1:])
    if rest:
        raise ValueError(f"{command}: unexpected arguments {rest}")
    other = [n for c, names in ONLY.items() if c != command for n in names if FLAGS[n].present]
    if other:
        raise ValueError(f"{command}: --{other[0]} is a flag of another command")
    missing = [f"--{n}" for n in REQUIRED[command] if FLAGS[n].value is None]
    if missing:
        raise ValueError(f"{command} needs {', '.join(missing)}")
    args.command = command
    return args


class Setup:
    """What every command derives from the flags: the space, the settings, the storage."""

    def __init__(self, args, with_heartbeat=True):
        self.space, self.cfg = configured([args.space], args.gin_param)
        where = locate([args.space])
        if not isinstance(self.space, SearchSpace) or not isinstance(self.cfg, StudyConfig):
            raise ValueError(f"{args.space}: expected space.* and study.* bindings")
        self.space.check(where)
        self.cfg.check(where)
        self.args = args
        self.name = args.study_name or self.cfg.name or \
            os.path.splitext(os.path.basename(args.space))[0]
        self.url = storage_url(args.storage, args.study_dir, args.storage_password_file)
        self.fresh = not os.path.exists(args.study_dir)  # (made here: removed on errors)
        writable_folder(args.study_dir, "--study_dir")
        try:
            self.storage = open_storage(self.url, self.cfg, with_heartbeat)
        except ValueError:
            if self.fresh:  # an unreachable storage leaves no empty study folder behind
                shutil.rmtree(args.study_dir, ignore_errors=True)
            raise


def run(args) -> int:
    if args.workers < 1 or args.n_trials < 1:
        raise ValueError("--workers and --n_trials must be positive")
    s = Setup(args)
    base_gin = os.path.join(args.study_dir, "base.gin")
    trial_gin.write_trial_gin(base_gin, s.space, {"model.base": s.space.base}, None,
                              "The trials' common setup (before the sample).")
    _, recipe, data = trial_gin.parse_trial_gin(base_gin)
    refs = references.reference_params(s.space, recipe)
    split = study_lib.prepare_split(args.study_dir, data, s.cfg.minival_examples)
    study, created = study_lib.open_study(s.space, s.cfg, s.storage, s.name, args.worker_index,
                                          args.space)
    print(f"study {s.name!r} in {mask_url(s.url)} ({'created' if created else 'joined'}); "
          f"budgets {s.cfg.budgets()} steps", flush=True)
    if created:
        study.set_user_attr("global_batch", recipe.global_batch)
    # Worker 0 alone enqueues the references (workers starting together would each do it).
    if args.worker_index == 0 and not any(TrialRecord.of(t).reference is not None
                                          for t in study.get_trials(deepcopy=False)):
        study_lib.enqueue_references(study, refs)
        print(f"enqueued {len(refs)} reference trial(s): {', '.join(refs) or 'none'}",
              flush=True)
    if args.workers > 1:
        return _start_workers(args)
    return _work(args, s, study, split, recipe.warmup_steps / max(recipe.train_steps, 1))


def _work(args, s, study, split, warmup_fraction) -> int:
    trials_dir = args.trials_dir or os.path.join(os.path.abspath(args.study_dir), "trials")
    worker = Worker(study, s.space, s.cfg, os.path.abspath(args.study_dir), trials_dir, split,
                    warmup_fraction, args.worker_index, args.tpu)
    worker.install_signal_handlers()
    if worker.run(args.n_trials) == "stopped":
        log.info("stopped: the running trial was re-queued")
        return 0
    reasons = map(end_reason, study.get_trials(deepcopy=False))
    log.info(f"study {s.name!r}: {end_reason_counts(reasons)}; "
             f"report: python -m tpu_convrnn.search report --space={args.space} "
             f"--study_dir={args.study_dir}")
    return 0


def _start_workers(args) -> int:
    """Starts ``--workers`` worker processes of this command and waits for them; SIGTERM and
    Ctrl-C are passed on (each saves its rung and re-queues its trial)."""
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip or a.startswith(("--workers=", "--worker_index=")):
            skip = False
            continue
        skip = a in ("--workers", "--worker_index")
        if not skip:
            argv.append(a)
    children = [subprocess.Popen([sys.executable, "-m", "tpu_convrnn.search"] + argv +
                                 ["--workers=1", f"--worker_index={args.worker_index + i}"],
                                 start_new_session=True)
                for i in range(args.workers)]

    def forward(signum, frame):
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [c.wait() for c in children]
    return max(codes)


def report(args) -> int:
    s = Setup(args, with_heartbeat=False)
    missing = [d for d in args.compare_with if not os.path.exists(os.path.join(d, "study.db"))]
    if missing:
        raise ValueError(f"--compare_with={missing[0]}: no study.db there")
    study = _load(s.name, s.storage, mask_url(s.url) if args.storage else "the study folder",
                  s.fresh and args.study_dir)
    ours = study.user_attrs.get("description", {})
    studies = {_label(args.study_dir, ours): study}
    for folder in args.compare_with:  # (checked before anything is written)
        other = _load(s.name, open_storage(storage_url(None, folder), s.cfg, with_heartbeat=False),
                      f"--compare_with={folder}")
        theirs = other.user_attrs.get("description", {})
        diff = [d for d in study_lib.differences(ours, theirs) if d != "study.sampler"]
        if diff:
            raise ValueError(f"--compare_with={folder}: study {s.name!r} has another space or "
                             f"settings (differs in: {study_lib.listed(diff)})")
        label = _label(folder, theirs)
        studies[label if label not in studies else _label(folder, theirs, whole=True)] = other
    out = args.output or os.path.join(args.study_dir, "report")
    report_lib.write_report(study, s.space, s.cfg, out, args.top, args.space)
    if args.compare_with:
        report_lib.write_comparison({label: report_lib.best_so_far(
            report_lib.trial_rows(st, s.cfg), s.cfg.max_steps) for label, st in studies.items()},
            out)
    return 0


def _load(name, storage, where, remove_if_missing=None):
    """The stored study ``name``; ValueError naming ``where`` if there is none (and a study
    folder this command made is removed: a report of a missing study leaves nothing)."""
    import optuna
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        if remove_if_missing:
            shutil.rmtree(remove_if_missing, ignore_errors=True)
        raise ValueError(f"no study {name!r} in {where}") from None


def _label(folder, description, whole=False) -> str:
    """A study's name in the comparison: its folder's name (``whole``: the folder as given,
    for two folders of one name) and its sampler."""
    sampler = description.get("study", {}).get("sampler", "tpe")
    name = os.path.normpath(folder)
    return f"{name if whole else os.path.basename(name)} ({sampler})"


def main(argv=None) -> int:
    return cli.main(_command, FLAGS, __doc__, argv, parse=parse, help_fn=_help,
                    usage_errors=(ValueError,))  # (a bad space, storage or study too)


def _command(args) -> int:
    # a worker's lines carry its index (several share a console)
    console.to_console(f"[w{args.worker_index}] " if args.command == "run" else "")
    try:
        return {"run": run, "report": report}[args.command](args)
    except RunnerBroken as e:
        print(f"error: RunnerBroken: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
