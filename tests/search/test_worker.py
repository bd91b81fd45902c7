"""A worker's handling of a rung folder that another run holds, and of a trial that another
worker failed while its rung ran (the runner is a stand-in here; the real one is started in
test_search_runs.py)."""
import contextlib
import os
import subprocess
import sys
import threading

import optuna
import pytest

from tpu_convrnn.gin_bindings import REPO_ROOT
from tpu_convrnn.search import config, study, worker as worker_lib
from tpu_convrnn.search.rung import EXIT_CODES, RungResult
from tpu_convrnn.training import model_dir as model_dir_lib

SMALL = os.path.join(REPO_ROOT, "gin", "search", "small.gin")


class _Runner:
    """Answers rung requests with the given results, calling ``before(k)`` first."""

    def __init__(self, results, before=lambda k: None):
        self.results, self.before, self.calls = list(results), before, []

    def run(self, result_path, log_path, echo_prefix, echo=(), **request):
        self.calls.append(request["model_dir"])
        self.before(len(self.calls))
        return self.results.pop(0)


@contextlib.contextmanager
def _held(model_dir):
    """Another process holds ``model_dir`` (a run's LOCK) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom tpu_convrnn.training import model_dir\n"
         "with model_dir.hold(sys.argv[1]):\n    print('held', flush=True)\n"
         "    sys.stdin.read()\n", model_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def _worker(tmp_path):
    space, cfg = config.configured([SMALL], [])
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg,
                                 with_heartbeat=False)
    s, _ = study.open_study(space, cfg, storage, "s")
    w = worker_lib.Worker(s, space, cfg, str(tmp_path), str(tmp_path / "trials"), None, 0.1)
    return w, s, storage


def test_a_rung_whose_folder_another_run_holds_is_busy_and_touches_nothing(tmp_path):
    """The rung command on a model dir that a live run holds exits 'busy' before it builds or
    writes anything (a worker then waits and runs it again: it is not the trial's fault)."""
    gin = tmp_path / "trial.gin"
    gin.write_text("include 'gin/models/rgc_shallow.gin'\ninclude 'gin/local.gin'\n"
                   "model.width = 0.0625\nmodel.times = 6\n")
    d = tmp_path / "rung"
    with _held(str(d)) as holder:
        proc = subprocess.run([sys.executable, "-m", "tpu_convrnn.search.rung",
                               f"--gin_file={gin}", f"--model_dir={d}", "--steps=4",
                               "--checkpoint_every=2", f"--result={tmp_path / 'r.json'}"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_CODES["busy"], proc.stdout[-2000:] + proc.stderr[-2000:]
    result = RungResult.read(str(tmp_path / "r.json"))
    assert result.status == "busy" and f"is in use by pid {holder.pid}" in result.error
    assert sorted(os.listdir(d)) == ["LOCK.guard"]  # no checkpoints, no eval, LOCK released


def test_a_busy_rung_is_waited_for_and_run_again(tmp_path, messages):
    """Another run took the rung's folder between the worker's check and the rung's start:
    the worker waits until that run lets go, then runs the rung (the trial does not fail)."""
    w, s, _ = _worker(tmp_path)
    trial = s.ask()
    d = str(tmp_path / "trials" / "00000" / "steps_20")
    other, holder, letting_go = contextlib.ExitStack(), [], threading.Event()

    def let_go():
        letting_go.set()
        other.close()

    def before(k):
        if k == 1:  # the other run takes the folder now, and lets go 3 s later
            holder.append(other.enter_context(_held(d)))
            threading.Timer(3.0, let_go).start()
        else:  # the rung runs again only once it has let go
            assert letting_go.is_set() and model_dir_lib.live_holder(d) is None
    w.runner = _Runner([RungResult("busy", error="ModelDirInUse: in use"),
                        RungResult("done", step=20, top1=0.5, top1_per_step=[0.5])], before)
    metrics = w._run_rung(trial, d, str(tmp_path / "trial.gin"), 20, "rung 1/1", poll=0.2)
    assert metrics["top1"] == 0.5 and w.runner.calls == [d, d]
    assert any(f"is held by pid {holder[0].pid}" in line for line in messages), messages


def test_a_trial_failed_by_another_worker_during_its_rung_is_let_go(tmp_path):
    """While the rung ran, another worker failed the trial (its heartbeat looked stale) and
    queued a retry: at the rung's end this worker stops working on it (TakenOver; the trial
    stays FAIL) instead of writing to a finished trial."""
    w, s, storage = _worker(tmp_path)
    trial = s.ask()

    def fail_it(k):  # what fail_stale_trials on another worker does
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    w.runner = _Runner([RungResult("done", step=20, top1=0.5)], fail_it)
    with pytest.raises(worker_lib.TakenOver):
        w._run_rung(trial, str(tmp_path / "rung"), str(tmp_path / "trial.gin"), 20, "rung 1/1")
    assert storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.FAIL
    assert "rung_seconds" not in storage.get_trial(trial._trial_id).user_attrs


def test_checkpoints_of_a_rung_that_a_live_run_holds_are_kept(tmp_path):
    trial_dir = tmp_path / "00003"
    for rung in ("steps_20", "steps_60"):
        os.makedirs(trial_dir / rung / "checkpoints")
    with _held(str(trial_dir / "steps_60")):
        worker_lib._remove_checkpoints(str(trial_dir))
    assert not os.path.exists(trial_dir / "steps_20" / "checkpoints")
    assert os.path.exists(trial_dir / "steps_60" / "checkpoints")
