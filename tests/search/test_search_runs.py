"""Real searches: worker processes on a real PostgreSQL server (one killed with SIGKILL), and a
tiny search on the embedded task that ranks a crippled cell below the reference RGC."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tpu_convrnn.gin_bindings import REPO_ROOT
from tpu_convrnn.search import study as study_lib
from tpu_convrnn.search.local_postgres import LocalPostgres, bin_dir

SMALL = os.path.join(REPO_ROOT, "gin", "search", "small.gin")
PASSWORD = "pg-secret-8271"
# Tiny trials: a sixteenth of the channels, 72 px, T = 7, the 1,125 held-out digits.
TINY = ["space.trial_bindings = ['model.width = 0.0625', 'model.times = 7', "
        "'train.eval_batch = 375']"]


def _space(tmp_path, *lines):
    path = tmp_path / "space.gin"
    path.write_text("\n".join([f"include '{SMALL}'"] + TINY + list(lines)) + "\n")
    return str(path)


def _worker(args, out_path, index=0):
    env = {**os.environ, study_lib.PASSWORD_ENV: PASSWORD, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tpu_convrnn.search", "run", *args,
                             f"--worker_index={index}"],
                            stdout=open(out_path, "w"), stderr=subprocess.STDOUT, env=env,
                            cwd=REPO_ROOT)


def _wait_for(path, pattern, proc, timeout=300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(pattern, open(path).read())
        if m:
            return m
        assert proc.poll() is None, open(path).read()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in {path} after {timeout} s")


def _study(url, name="space"):
    return optuna.load_study(study_name=name, storage=url)


@pytest.fixture(scope="module")
def postgres():
    try:
        bin_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    with LocalPostgres() as pg:
        yield pg


def test_workers_on_postgres_share_one_study_and_a_killed_trial_resumes(postgres, tmp_path):
    space = _space(tmp_path, "study.min_steps = 30", "study.max_steps = 30",
                   "study.checkpoint_every = 10", "study.heartbeat_interval = 2",
                   "study.grace_period = 8", "study.n_startup_trials = 2",
                   "study.keep_top_k = 1")
    study_dir = tmp_path / "study"
    args = [f"--space={space}", f"--study_dir={study_dir}", f"--storage={postgres.url}",
            "--n_trials=4"]
    outs = [tmp_path / f"w{i}.txt" for i in range(4)]
    procs = [_worker(args, outs[i], i) for i in range(3)]
    # kill -9 worker 0 once its trial has saved a checkpoint mid-rung
    number = int(_wait_for(outs[0], r"\[w0\] t(\d+) 30: step \d+: saved checkpoint \S+ckpt-"
                                    r"(10|20)\b", procs[0]).group(1))
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    assert postgres.terminate_connections() >= 1  # the other workers' connections drop
    for p in procs[1:]:
        assert p.wait(timeout=600) == 0
    time.sleep(8)  # the grace period: a restarted worker fails the stale trial and resumes it
    restart = _worker(args, outs[3], 3)
    assert restart.wait(timeout=600) == 0, open(outs[3]).read()[-3000:]

    url = study_lib.storage_url(postgres.url, str(study_dir))
    trials = _study(url).get_trials()
    states = optuna.trial.TrialState
    assert trials[number].state == states.FAIL  # failed by the heartbeat
    retries = [t for t in trials if study_lib.origin_number(t) == number and t.number != number]
    assert [t.state for t in retries] == [states.COMPLETE]
    log = open(study_dir / "logs" / f"trial_{number:05d}_steps_30.log").read()
    resumed = re.findall(r"resumed from checkpoint \S+ at step (\d+)", log)
    assert resumed and int(resumed[0]) > 0, log[-2000:]

    finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    assert len(finished) >= 4
    trained = [t for t in finished if "repeat_of" not in t.user_attrs]
    hashes = [t.user_attrs["config_hash"] for t in trained]
    assert len(hashes) == len(set(hashes))  # no configuration trained twice
    for t in finished:
        assert os.path.exists(t.user_attrs["gin"]) and t.user_attrs["params"] > 0
        if "diverged" not in t.user_attrs:  # a diverged rung scores 0 and is not evaluated
            assert os.path.exists(f"{t.user_attrs['trial_dir']}/steps_30/eval/metrics.json")
    # checkpoints are kept for the top trial only (study.keep_top_k = 1)
    assert len(glob.glob(str(study_dir / "trials" / "*" / "steps_*" / "checkpoints"))) == 1
    # the password is nowhere: console output, logs, gin files, trial records
    texts = [open(o).read() for o in outs]
    texts += [open(f).read() for f in glob.glob(str(study_dir / "**" / "*.*"), recursive=True)
              if f.endswith((".log", ".gin"))]
    texts += [json.dumps(t.user_attrs) for t in trials]
    assert all(PASSWORD not in text for text in texts)
    assert "postgresql://search:***@127.0.0.1" in texts[1]


def test_no_error_path_prints_the_password(postgres, tmp_path, capsys, monkeypatch):
    """Each storage error of ``run`` and ``report`` (a missing study, a missing database, a
    refused port, an unparseable URL, a password inside the URL) is one line on stderr with the
    URL masked; the password appears nowhere in the output."""
    import socket

    from tpu_convrnn.search.__main__ import main
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(study_lib.PASSWORD_ENV, PASSWORD)
    server = postgres.url.rsplit("/", 1)[0]
    cases = [  # (command, --storage, what the one line says)
        ("report", postgres.url, "no study 'small' in postgresql://search:***@"),
        ("report", f"{server}/no_such_db", "cannot reach the study storage postgresql://"
                                           "search:***@"),
        ("run", f"{server}/no_such_db", "cannot reach the study storage"),
        ("run", f"postgresql://search@127.0.0.1:{port}/search", "cannot reach the study storage"),
        ("run", f"postgresql://search:{PASSWORD}@127.0.0.1:{port}/search",
         "a password inside the URL"),
        ("report", f"postgresql://search:{PASSWORD}@127.0.0.1:not_a_port/search",
         "not an SQLAlchemy URL"),
    ]
    for command, url, says in cases:
        extra = ["--n_trials=1"] if command == "run" else []
        rc = main([command, f"--space={SMALL}", f"--study_dir={tmp_path / 'study'}",
                   f"--storage={url}"] + extra)
        out, err = capsys.readouterr()
        assert rc == 2 and len(err.strip().splitlines()) == 1, (command, url, err)
        assert says in err, (command, url, err)
        assert PASSWORD not in out + err, (command, url, err)
    assert not os.path.exists(tmp_path / "study")  # nothing left behind


def test_a_database_outage_during_live_rungs_fails_no_trial(postgres, tmp_path):
    """The server stops for 20 s while two workers train (shorter than the grace period):
    their calls wait it out and their heartbeats go on after it; no live trial is failed as
    stale and none is trained twice."""
    space = _space(tmp_path, "study.min_steps = 60", "study.max_steps = 60",
                   "study.checkpoint_every = 20", "study.heartbeat_interval = 2",
                   "study.grace_period = 45", "space.references = []",
                   "space.trial_bindings = ['model.width = 0.0625', 'model.times = 7', "
                   "'train.steps_per_loop = 10', 'train.eval_batch = 375']")
    study_dir = tmp_path / "study"
    args = [f"--space={space}", f"--study_dir={study_dir}", f"--storage={postgres.url}",
            "--study_name=outage", "--n_trials=3"]
    outs = [tmp_path / f"w{i}.txt" for i in range(2)]
    procs = [_worker(args, outs[i], i) for i in range(2)]
    for i in range(2):  # both are training
        _wait_for(outs[i], rf"\[w{i}\] t\d+ 60: step 20: saved checkpoint", procs[i])
    postgres.halt()
    time.sleep(20)
    postgres.serve()
    for i, p in enumerate(procs):
        assert p.wait(timeout=600) == 0, open(outs[i]).read()[-3000:]
    texts = [open(o).read() for o in outs]
    assert any("cannot be reached" in t for t in texts)  # the outage was seen, and survived
    assert any("answers again" in t for t in texts)
    url = study_lib.storage_url(postgres.url, str(study_dir))
    trials = _study(url, "outage").get_trials()
    assert [t.state.name for t in trials].count("FAIL") == 0, [study_lib.end_reason(t)
                                                               for t in trials]
    assert len([t for t in trials if t.state.name == "COMPLETE"]) >= 3
    origins = [study_lib.origin_number(t) for t in trials]
    assert len(origins) == len(set(origins))  # no retry: nothing trained twice
    assert all(PASSWORD not in t for t in texts)


# A worker's claim loop, alone: ask for trials until a fresh one (none waiting) comes; prints
# the numbers of the waiting trials it was given.
_CLAIMANT = """
import json, os, sys, time
import optuna
from tpu_convrnn.search import config, study
url, folder, index = sys.argv[1], sys.argv[2], sys.argv[3]
storage = study.open_storage(url, config.StudyConfig(), with_heartbeat=False)
s = optuna.load_study(study_name="claims", storage=storage)
open(os.path.join(folder, "ready" + index), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.01)
got = []
while "waiting" in (trial := s.ask()).user_attrs:
    got.append(trial.user_attrs["waiting"])
print(json.dumps(got))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_workers_asking_together_never_get_the_same_waiting_trial(backend, tmp_path, request):
    """Four worker processes claim 120 queued trials (retries) at once: each is given to
    exactly one (SQLite ignores SELECT ... FOR UPDATE; without immediate transactions two
    workers were given one retry and trained it in one folder)."""
    if backend == "postgres":
        url = request.getfixturevalue("postgres").url
    else:
        url = study_lib.storage_url(None, str(tmp_path))
    queued = optuna.create_study(study_name="claims", storage=url)
    for i in range(120):
        queued.enqueue_trial({"x": float(i)}, user_attrs={"waiting": i})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMANT, url, str(tmp_path), str(i)],
                              stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT) for i in range(4)]
    end = time.monotonic() + 120
    while len(glob.glob(str(tmp_path / "ready*"))) < 4 and time.monotonic() < end:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    claims = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        claims += json.loads(out.decode().strip().splitlines()[-1])
    assert sorted(claims) == list(range(120))  # each once; none left waiting, none twice


def test_tiny_search_ranks_a_crippled_cell_below_the_reference(tmp_path):
    # gate offset 0.01 (multiplier -0.01): every cell passes at most 2% of its input on
    crippled = "{'cell.gate_offset': 0.01, 'cell.tau_offset': 1.0, 'cell.use_bias': False}"
    cell = open(SMALL).read().split("space.cell = ")[1].split("}")[0] + "}"
    cell = cell.replace("'gate_offset': ('float', 0.2, 1.5, 'log')",
                        "'gate_offset': ('float', 0.01, 1.5, 'log')")
    space = _space(tmp_path, f"space.cell = {cell}", "study.keep_top_k = 1",
                   "study.min_steps = 60", "study.reduction_factor = 2", "study.max_steps = 120",
                   "study.checkpoint_every = 60",
                   "study.recycle_rungs = 2",  # (three rungs: the runner is replaced once)
                   # an eighth of the channels (small.gin's): the reference leaves chance by step
                   # 60 (at 30 steps both trials still predicted one class: a tie, no pruning)
                   "space.trial_bindings = ['model.width = 0.125', 'model.times = 7']",
                   f"space.references = {{'rgc': 'shallow_rgc_cell', 'crippled': {crippled}}}")
    study_dir = tmp_path / "study"
    out = tmp_path / "w.txt"
    proc = _worker([f"--space={space}", f"--study_dir={study_dir}", "--n_trials=2"], out)
    assert proc.wait(timeout=600) == 0, open(out).read()[-3000:]
    text = open(out).read()
    assert "rung 1/2 (60 steps): top1" in text and "pruned" in text
    assert len(re.findall(r"rung runner \(pid \d+\): recycled after 2 rungs", text)) == 1
    assert len(re.findall(r"rung runner started", text)) == 2

    trials = {t.user_attrs["reference"]: t for t in _study(
        f"sqlite:///{study_dir}/study.db").get_trials()}
    rgc, bad = trials["rgc"], trials["crippled"]
    assert bad.intermediate_values[60] < rgc.intermediate_values[60]
    assert bad.state == optuna.trial.TrialState.PRUNED
    assert rgc.state == optuna.trial.TrialState.COMPLETE and rgc.value > 0.3  # chance: 0.1
    # only the best trial keeps checkpoints
    kept = glob.glob(str(study_dir / "trials" / "*" / "steps_*" / "checkpoints"))
    assert kept and all(f"/{rgc.number:05d}/" in k for k in kept)

    report = subprocess.run([sys.executable, "-m", "tpu_convrnn.search", "report",
                             f"--space={space}", f"--study_dir={study_dir}", "--top=1"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert report.returncode == 0, report.stderr[-3000:]
    median = study_dir / "report" / "median_top1.gin"
    assert f"wrote {median}" in report.stdout
    for name in ("trials.csv", "search.png"):
        assert os.path.getsize(study_dir / "report" / name) > 0
    # the median gin file trains with tpu_convrnn.main as its header writes it
    command = re.search(r"#\s+(python -m tpu_convrnn.main .*)", median.read_text()).group(1)
    argv = command.replace("DIR", str(tmp_path / "median")).split()
    run = subprocess.run([sys.executable] + argv[1:],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert os.path.exists(tmp_path / "median" / "eval" / "metrics.json")


def test_sigterm_stops_a_worker_cleanly_and_the_trial_resumes(tmp_path):
    """SIGTERM in a trial's second rung: saved, re-queued (counted as interrupted, not as a
    crash); the retry keeps the rung it had passed and resumes the second from its
    checkpoint."""
    space = _space(tmp_path, "study.min_steps = 20", "study.reduction_factor = 2",
                   "study.max_steps = 40", "study.checkpoint_every = 10", "space.references = []",
                   "space.trial_bindings = ['model.width = 0.0625', 'model.times = 7', "
                   "'train.steps_per_loop = 10']")
    study_dir = tmp_path / "study"
    args = [f"--space={space}", f"--study_dir={study_dir}", "--n_trials=1"]
    out = tmp_path / "w.txt"
    proc = _worker(args, out)
    number = int(_wait_for(out, r"\[w0\] t(\d+) 40: step 10: saved checkpoint", proc).group(1))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    assert "re-queued to resume" in open(out).read()
    trials = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    states = optuna.trial.TrialState
    assert [t.state for t in trials] == [states.FAIL, states.WAITING]
    assert trials[1].user_attrs["resume_of"] == number == 0
    assert trials[1].user_attrs["rungs_passed"] == 1
    assert study_lib.end_reason(trials[0]) == "interrupted"
    again = _worker(args, tmp_path / "w2.txt")
    assert again.wait(timeout=600) == 0
    trials = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    assert trials[1].state == states.COMPLETE and trials[1].params == trials[0].params
    text = open(tmp_path / "w2.txt").read()
    assert "trial 1 rung 1/2: already evaluated at step 20" in text  # not trained again
    assert re.search(r"study 'space': 1 complete, 1 interrupted", text), text[-2000:]
    # the loop running at the signal finishes and saves (step 20, or 30 when the signal lands
    # after the poll saw step 10 late, on a busy machine); the retry goes on from there
    log = open(study_dir / "logs" / "trial_00000_steps_40.log").read()
    resumed = re.search(r"resumed from checkpoint \S+ckpt-(\d+) at step (\d+)", log)
    assert resumed and resumed.group(1) == resumed.group(2) and \
        int(resumed.group(1)) in (20, 30), log[-2000:]


def test_sigterm_in_a_rungs_evaluation_requeues_the_trial_with_its_checkpoints(tmp_path):
    """SIGTERM to a worker while its rung evaluates: the evaluation is dropped, the rung's
    checkpoints kept and the trial re-queued; the retry trains nothing and only evaluates."""
    space = _space(tmp_path, "study.min_steps = 10", "study.max_steps = 10",
                   "study.checkpoint_every = 10", "space.references = []",
                   "space.trial_bindings = ['model.width = 0.0625', 'model.times = 7', "
                   "'train.steps_per_loop = 10', 'train.eval_batch = 10']")  # 50 eval batches
    study_dir = tmp_path / "study"
    args = [f"--space={space}", f"--study_dir={study_dir}", "--n_trials=1"]
    out = tmp_path / "w.txt"
    proc = _worker(args, out)
    _wait_for(out, r"\[w0\] t0 10: step 10: saved checkpoint", proc)
    proc.send_signal(signal.SIGTERM)  # the evaluation of step 10 comes next
    assert proc.wait(timeout=120) == 0, open(out).read()[-3000:]
    log = open(study_dir / "logs" / "trial_00000_steps_10.log").read()
    assert "SIGTERM: evaluation dropped" in log, log[-2000:]
    trials = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    states = optuna.trial.TrialState
    assert [t.state for t in trials] == [states.FAIL, states.WAITING]
    assert study_lib.end_reason(trials[0]) == "interrupted"
    rung_dir = study_dir / "trials" / "00000" / "steps_10"
    assert os.path.exists(rung_dir / "checkpoints" / "ckpt-10.index")
    assert not os.path.exists(rung_dir / "eval" / "metrics.json")
    again = _worker(args, tmp_path / "w2.txt")
    assert again.wait(timeout=600) == 0, open(tmp_path / "w2.txt").read()[-3000:]
    trials = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    assert trials[1].state == states.COMPLETE and 0 < trials[1].value <= 1
    log = open(study_dir / "logs" / "trial_00000_steps_10.log").read()
    assert re.search(r"resumed from checkpoint \S+ckpt-10 at step 10", log), log[-2000:]
    assert [e["step"] for e in json.load(open(rung_dir / "eval" / "metrics.json"))] == [10]


def test_a_diverging_trial_scores_zero_and_the_worker_goes_on(tmp_path):
    space = _space(tmp_path, "study.min_steps = 20", "study.max_steps = 20",
                   "space.train = {'base_lr': ('float', 0.1, 1e9, 'log')}",
                   "space.references = {'huge_lr': {'train.base_lr': 1e9}}")
    study_dir = tmp_path / "study"
    out = tmp_path / "w.txt"
    proc = _worker([f"--space={space}", f"--study_dir={study_dir}", "--n_trials=1"], out)
    assert proc.wait(timeout=600) == 0, open(out).read()[-3000:]
    [trial] = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.0
    assert "loss became NaN" in trial.user_attrs["diverged"]
    assert "diverged, scored top1 0" in open(out).read()


def test_a_rung_is_one_call_and_sigterm_in_its_evaluation_keeps_the_trial(tmp_path):
    """A rung trains and evaluates in one train_and_evaluate; SIGTERM while it evaluates
    exits 3 (re-queue: resume later) with the checkpoints kept, and the next call only
    evaluates the rung's last step."""
    from tpu_convrnn.search.rung import PREEMPTED
    gin = tmp_path / "trial.gin"
    gin.write_text("include 'gin/models/rgc_shallow.gin'\ninclude 'gin/local.gin'\n"
                   "model.width = 0.0625\nmodel.times = 6\ntrain.steps_per_loop = 2\n"
                   "train.eval_batch = 10\n")  # 50 evaluation batches: time to be signalled
    d = tmp_path / "rung"
    cmd = [sys.executable, "-m", "tpu_convrnn.search.rung", f"--gin_file={gin}",
           f"--model_dir={d}", "--steps=4", "--checkpoint_every=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.startswith("step 4: saved checkpoint"):
            proc.send_signal(signal.SIGTERM)  # the evaluation of step 4 comes next
            break
    out.append(proc.communicate(timeout=300)[0])
    text = "".join(out)
    assert proc.returncode == PREEMPTED, text[-3000:]
    assert "SIGTERM: evaluation dropped" in text and "eval at step 2" not in text
    assert not os.path.exists(d / "eval" / "metrics.json")
    assert os.path.exists(d / "checkpoints" / "ckpt-4.index")  # kept for the retry
    again = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert re.search(r"resumed from checkpoint \S+ckpt-4 at step 4", again.stdout), again.stdout
    assert "eval at step 4" in again.stdout and "step 2/" not in again.stdout  # trains nothing
    assert [e["step"] for e in json.load(open(d / "eval" / "metrics.json"))] == [4]


def test_a_killed_or_hung_runner_fails_its_rung_alone_and_the_worker_goes_on(tmp_path):
    """The worker's rung runner runs rung after rung in one process; SIGKILL to it (as the
    kernel's out-of-memory killer sends) fails that rung's trial with the reason; a runner
    that stops writing (SIGSTOP: a hang) is killed after ``study.hang_timeout`` and its rung
    failed; a new runner runs the next trials."""
    from tpu_convrnn.search.rung import RungResult
    space = _space(tmp_path, "study.min_steps = 20", "study.max_steps = 20",
                   "study.checkpoint_every = 10", "space.references = []",
                   "study.hang_timeout = 40",
                   "space.trial_bindings = ['model.width = 0.0625', 'model.times = 7', "
                   "'train.steps_per_loop = 10', 'train.eval_batch = 375']")
    study_dir = tmp_path / "study"
    out = tmp_path / "w.txt"
    proc = _worker([f"--space={space}", f"--study_dir={study_dir}", "--n_trials=3"], out)
    pid = int(_wait_for(out, r"\[w0\] rung runner started \(pid (\d+)\)", proc).group(1))
    _wait_for(out, r"\[w0\] t0 20: step 10: saved checkpoint", proc)
    os.kill(pid, signal.SIGKILL)
    second = int(_wait_for(out, r"rung runner started[\s\S]*rung runner started \(pid (\d+)\)",
                           proc).group(1))
    _wait_for(out, r"\[w0\] t1 20: step 10: saved checkpoint", proc)
    os.kill(second, signal.SIGSTOP)
    assert proc.wait(timeout=600) == 0, open(out).read()[-3000:]
    trials = _study(f"sqlite:///{study_dir}/study.db").get_trials()
    states = optuna.trial.TrialState
    assert [t.state for t in trials] == [states.FAIL, states.FAIL] + [states.COMPLETE] * 3
    assert trials[0].user_attrs["error"] == \
        "the rung runner was killed by SIGKILL (out of memory?)"
    assert trials[1].user_attrs["error"] == \
        "the rung runner wrote nothing for 40 s (hung?) and was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)  # (killed, not left stopped)
    results = [RungResult.read(f) for f in sorted(glob.glob(str(study_dir / "rungs" / "*")))]
    assert [r.status for r in results] == ["done"] * 3  # (the two lost rungs wrote none)
    # one new runner ran the later rungs: the imports were paid once
    assert len({r.pid for r in results}) == 1 and results[0].pid not in (pid, second)
    assert results[0].seconds["startup"] > 0 and results[2].seconds["startup"] == 0
    assert all(0 < r.top1 <= 1 and r.seconds["eval"] > 0 for r in results)
    assert len(re.findall(r"rung runner started", open(out).read())) == 3
