"""launch/tpu.sh against a fake gcloud that records its arguments; launch/local.sh end to end."""
import json
import os
import stat
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_SH = os.path.join(REPO, "launch", "tpu.sh")
LOCAL_SH = os.path.join(REPO, "launch", "local.sh")
TRICKY = "data.train_pattern = 'gs://b/my data/$HOME/train-*' # \"quoted\" `x` \\ end"


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake(tmp_path):
    """A bin folder with a fake gcloud (and python3) that append their argv as JSON lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorder = (f"#!{sys.executable}\nimport json, os, sys\n"
                "with open(os.environ['{var}'], 'a') as f:\n"
                "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    _executable(bin_dir / "gcloud", recorder.format(var="GCLOUD_LOG"))
    _executable(bin_dir / "python3", recorder.format(var="PYTHON_LOG"))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "GCLOUD_LOG": str(tmp_path / "gcloud.jsonl"), "PYTHON_LOG": str(tmp_path / "py.jsonl"),
           "TPU_PROJECT": "proj", "TPU_ZONE": "us-central2-b", "TPU_NAME": "rgc"}

    def run(*args, extra_env=None, check=True):
        proc = subprocess.run(["bash", TPU_SH, *args], env={**env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stderr
        log = tmp_path / "gcloud.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() \
            else []
        log.unlink(missing_ok=True)
        return proc, calls
    run.tmp = tmp_path
    run.env = env
    return run


def _flag(call, name):
    return call[call.index(name) + 1]


def test_create_on_demand_spot_and_queued(fake):
    _, [call] = fake("create", "--accelerator-type", "v4-32", "--spot")
    assert call[:5] == ["compute", "tpus", "tpu-vm", "create", "rgc"]
    assert _flag(call, "--zone") == "us-central2-b" and _flag(call, "--project") == "proj"
    assert _flag(call, "--accelerator-type") == "v4-32"
    assert _flag(call, "--version") == "tpu-vm-tf-2.20.0-pod-pjrt"  # 32 cores: several hosts
    assert "--spot" in call
    _, [call] = fake("create", "--accelerator-type", "v4-8", "--queued",
                     extra_env={"TPU_TF_VERSION": "2.19.1"})
    assert call[:5] == ["compute", "tpus", "queued-resources", "create", "rgc"]
    assert _flag(call, "--node-id") == "rgc" and "--spot" not in call
    assert _flag(call, "--runtime-version") == "tpu-vm-tf-2.19.1-pjrt"  # one host
    _, [call] = fake("create", "--accelerator-type", "v4-8", "--runtime", "my-runtime")
    assert _flag(call, "--version") == "my-runtime"


def test_setup_copies_and_installs_the_matching_tf_pair_on_every_worker(fake):
    _, calls = fake("setup", "--tf-version", "2.19.1")
    scp, ssh = calls
    assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
    assert scp[5] == "rgc:tpu_convrnn.tar.gz" and os.path.exists(scp[4])
    listed = subprocess.run(["tar", "-tzf", scp[4]], capture_output=True, text=True).stdout
    assert "setup.py" in listed and "tpu_convrnn/training/train.py" in listed
    assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "rgc"] and "--worker=all" in ssh
    command = _flag(ssh, "--command")
    assert "tensorflow==2.19.1" in command and "tensorflow-tpu==2.19.1" in command
    assert "pip install -q -e 'tpu_convrnn[search]'" in command


def test_run_passes_gin_params_intact_to_every_worker(fake):
    _, [call] = fake("run", "--model-dir", "gs://bucket/runs/rgc", "--gin-file",
                     "gin/experiments/gru_shallow.gin", "--gin-param", TRICKY, "--",
                     "--gin_param=train.seed = 3")
    assert "--worker=all" in call
    remote = _flag(call, "--command")
    # What the remote login shell does with the command: run it where tpu_convrnn/ exists.
    (fake.tmp / "tpu_convrnn").mkdir()
    subprocess.run(["bash", "-c", remote], cwd=fake.tmp, env=fake.env, check=True, timeout=30)
    log = fake.tmp / "py.jsonl"
    for _ in range(100):  # the job is started in the background
        if log.exists() and log.read_text().endswith("\n"):
            break
        time.sleep(0.1)
    [argv] = [json.loads(line) for line in log.read_text().splitlines()]
    assert argv == ["-m", "tpu_convrnn.main", "--tpu=rgc", "--mode=train_and_eval",
                    "--model_dir=gs://bucket/runs/rgc", "--gin_file=gin/experiments/gru_shallow.gin",
                    f"--gin_param={TRICKY}", "--gin_param=train.seed = 3"]


def test_gin_params_from_the_environment_one_per_line(fake):
    _, [call] = fake("run", extra_env={"TPU_MODEL_DIR": "gs://b/r",
                                       "TPU_GIN_PARAMS": f"{TRICKY}\ntrain.seed = 4",
                                       "TPU_GIN_FILES": "a.gin b.gin", "TPU_MODE": "eval"})
    remote = _flag(call, "--command")
    words = subprocess.run(["bash", "-c", "printf '%s\\n' " + remote.split("nohup ", 1)[1]
                            .split(" > ")[0]], capture_output=True, text=True).stdout.splitlines()
    assert f"--gin_param={TRICKY}" in words and "--gin_param=train.seed = 4" in words
    assert "--gin_file=a.gin" in words and "--gin_file=b.gin" in words
    assert "--mode=eval" in words


def test_logs_ssh_status_delete(fake):
    _, [call] = fake("logs", "--worker", "3")
    assert "--worker=3" in call and "tail" in _flag(call, "--command")
    _, [call] = fake("ssh", "--", "ls", "-l", "my dir")
    assert "--worker=0" in call and _flag(call, "--command") == "ls -l my\\ dir"
    _, calls = fake("status", "--queued")
    assert [c[2] for c in calls] == ["queued-resources", "tpu-vm"]
    _, [call] = fake("delete")
    assert call[:5] == ["compute", "tpus", "tpu-vm", "delete", "rgc"] and "--quiet" in call
    _, [call] = fake("delete", "--queued")
    assert call[2:4] == ["queued-resources", "delete"] and "--force" in call


@pytest.mark.parametrize("args,env,message", [
    (["create"], {"TPU_PROJECT": ""}, "needs a Google Cloud project: set --project or TPU_PROJECT"),
    (["create"], {}, "needs an accelerator type"),
    (["run"], {}, "needs a model dir"),
    (["run", "--model-dir", "/tmp/x"], {}, "must be a gs:// folder"),
    (["setup"], {"TPU_NAME": ""}, "needs a TPU name"),
    (["launch"], {}, "unknown command 'launch'"),
    (["--zone"], {}, "--zone needs a value"),
    ([], {}, "no command given"),
])
def test_missing_settings_fail_before_any_gcloud_call(fake, args, env, message):
    proc, calls = fake(*args, extra_env=env, check=False)
    assert proc.returncode == 2 and message in proc.stderr
    assert calls == []


def test_dry_run_prints_instead_of_calling(fake):
    proc, calls = fake("--dry-run", "create", "--accelerator-type", "v5litepod-16")
    assert calls == []
    assert proc.stdout.startswith("gcloud compute tpus tpu-vm create rgc --project proj")
    assert "--accelerator-type v5litepod-16" in proc.stdout


def test_help_lists_every_command():
    out = subprocess.run(["bash", TPU_SH, "--help"], capture_output=True, text=True).stdout
    for command in ("create", "setup", "run", "logs", "ssh", "status", "delete", "--dry-run"):
        assert command in out


def test_scripts_are_shellcheck_clean():  # shellcheck comes with the test extra
    proc = subprocess.run(["shellcheck", TPU_SH, LOCAL_SH], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_local_sh_runs_end_to_end(tmp_path):
    env = dict(os.environ, LOCAL_MODEL_DIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2",
               LOCAL_EXPERIMENT="gin/experiments/timedecay_shallow.gin")
    proc = subprocess.run(["bash", LOCAL_SH, "--gin_param=train.train_steps = 4",
                           "--gin_param=train.warmup_steps = 0",
                           "--gin_param=train.steps_per_loop = 2",
                           "--gin_param=train.checkpoint_every = 4"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_and_eval: done at step 4" in proc.stdout
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())[0]["step"] == 4


def test_a_fleet_is_one_queued_resource_set_up_and_deleted_together(fake):
    _, [call] = fake("--fleet", "3", "--queued", "create", "--accelerator-type", "v4-8")
    assert call[:5] == ["compute", "tpus", "queued-resources", "create", "rgc"]
    assert _flag(call, "--node-count") == "3" and _flag(call, "--node-prefix") == "rgc"
    assert "--node-id" not in call
    proc, _ = fake("--fleet", "3", "create", "--accelerator-type", "v4-8", check=False)
    assert proc.returncode == 2 and "add --queued" in proc.stderr
    _, calls = fake("--fleet", "3", "setup")
    assert [c[4] for c in calls if c[3] == "ssh"] == ["rgc-0", "rgc-1", "rgc-2"]
    assert [c[5] for c in calls if c[3] == "scp"] == [f"rgc-{i}:tpu_convrnn.tar.gz"
                                                      for i in range(3)]
    _, calls = fake("--fleet", "3", "delete")
    assert [c[4] for c in calls] == ["rgc-0", "rgc-1", "rgc-2"]


def test_search_starts_one_worker_per_vm_and_keeps_the_password_off_command_lines(fake):
    pw = fake.tmp / "pw"
    pw.write_text("s3cret-pw\n")
    args = ["--fleet", "2", "search", "--space", "gin/search/median_cell.gin", "--n-trials",
            "2000", "--storage", "postgresql://search@10.0.0.5/search",
            "--storage-password-file", str(pw), "--trials-dir", "gs://b/search/trials"]
    _, calls = fake(*args)
    scps = [c for c in calls if c[3] == "scp"]
    sshs = [c for c in calls if c[3] == "ssh"]
    assert [(c[4], c[5]) for c in scps] == [(str(pw), "rgc-0:.search_password"),
                                            (str(pw), "rgc-1:.search_password")]
    for i, call in enumerate(sshs):
        assert call[4] == f"rgc-{i}"
        command = _flag(call, "--command")
        for part in ("-m tpu_convrnn.search run", "--space=gin/search/median_cell.gin",
                     "--storage=postgresql://search@10.0.0.5/search", f"--worker_index={i}",
                     "--trials_dir=gs://b/search/trials", "--n_trials=2000", "--tpu=local",
                     "--storage_password_file=../.search_password"):
            assert part in command, (part, command)
    assert not any("s3cret-pw" in " ".join(c) for c in calls)
    proc, _ = fake(*[a if a != "gs://b/search/trials" else "/tmp/trials" for a in args],
                   check=False)
    assert proc.returncode == 2 and "must be a gs:// folder" in proc.stderr
    proc, _ = fake(*[a.replace("search@", "search:pw@") for a in args], check=False)
    assert proc.returncode == 2 and "must not hold a password" in proc.stderr
