"""A model dir under kills, a second process, damaged state and bad data: real
``python -m tpu_convrnn.main`` runs on the embedded dataset, killed for real."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tpu_convrnn.training import model_dir as model_dir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--gin_file=gin/models/rgc_shallow.gin", "--gin_file=gin/local.gin",
        "--gin_param=model.width = 0.0625", "--gin_param=model.times = 6",
        "--gin_param=train.train_steps = 4", "--gin_param=train.steps_per_loop = 2",
        "--gin_param=train.checkpoint_every = 2", "--gin_param=train.warmup_steps = 0"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def start(model_dir, *extra, mode="train_and_eval"):
    return subprocess.Popen([sys.executable, "-m", "tpu_convrnn.main", *TINY, *extra,
                             f"--mode={mode}", f"--model_dir={model_dir}"], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_after(proc, line_part, sig=signal.SIGKILL, timeout=300):
    """Sends ``sig`` the moment a line containing ``line_part`` is printed; returns the
    output so far."""
    out, t0 = [], time.monotonic()
    for line in proc.stdout:
        out.append(line)
        if line_part in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() - t0 < timeout, "".join(out)
    else:
        raise AssertionError(f"{line_part!r} never printed:\n" + "".join(out)[-3000:])
    rest, _ = proc.communicate(timeout=timeout)
    return "".join(out) + rest


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def metric_steps(model_dir):
    path = os.path.join(model_dir, "eval", "metrics.json")
    return [e["step"] for e in json.load(open(path))] if os.path.exists(path) else []


def test_evaluations_cut_off_by_kills_are_redone_at_restart(tmp_path):
    d = str(tmp_path / "run")
    # killed right after saving ckpt-2, i.e. in its evaluation
    kill_after(start(d), "step 2: saved checkpoint")
    assert metric_steps(d) == []
    # killed in the evaluation of the final checkpoint
    out = kill_after(start(d), "step 4: saved checkpoint")
    assert "without an evaluation" in out and "ckpt-2" in out
    assert metric_steps(d) == [2]
    code, out = finish(start(d))
    assert code == 0, out[-3000:]
    assert "without an evaluation (cut off by a kill?): ckpt-4" in out
    assert "train_and_eval: done at step 4" in out
    assert metric_steps(d) == [2, 4]


def test_a_held_model_dir_is_refused_and_a_killed_holders_dir_is_recovered(tmp_path):
    d = str(tmp_path / "run")
    ckpts = os.path.join(d, "checkpoints")
    first = start(d, "--gin_param=train.train_steps = 400", mode="train")
    for line in first.stdout:  # holds the lock from before the model is built
        if line.startswith("step 2: saved"):
            break
    holder = json.load(open(os.path.join(d, model_dir_lib.LOCK_FILE)))
    assert holder["pid"] == first.pid
    code, second = finish(start(d))
    assert code != 0
    last = second.strip().splitlines()[-1]
    assert last.startswith("error: ModelDirInUse: model dir") and f"pid {first.pid}" in last
    first.send_signal(signal.SIGKILL)
    first.communicate()
    newest = max(int(n[5:-6]) for n in os.listdir(ckpts) if n.endswith(".index"))
    # damage left by kills: a lost checkpoint list and a save cut off half-way
    os.remove(os.path.join(ckpts, "checkpoint"))
    os.makedirs(os.path.join(ckpts, f"ckpt-{newest + 2}_temp", "part-00000-of-00001"))
    code, out = finish(start(d, f"--gin_param=train.train_steps = {newest + 2}",
                             mode="train"))
    assert code == 0, out[-3000:]
    assert f"taking over {d}/LOCK from pid {first.pid}" in out
    assert "checkpoint was missing or unreadable: rebuilt it from" in out
    assert f"resumed from checkpoint {ckpts}/ckpt-{newest} at step {newest}" in out
    assert f"ckpt-{newest + 2}_temp (a save cut off by a kill)" in out
    assert not os.path.exists(os.path.join(d, model_dir_lib.LOCK_FILE))  # released


@pytest.mark.parametrize("damage", ["label"])
def test_a_bad_shard_is_named_before_the_model_is_built(tmp_path, damage):
    from tpu_convrnn.data import embedded, records
    info = embedded.write_embedded(str(tmp_path / "cache"))
    files = records.list_files(info["train_pattern"])
    bad = files[1]
    if damage == "garbage":
        with open(bad, "wb") as f:
            f.write(b"this is not a TFRecord file" * 10)
    else:  # a good image with a label past the 10 classes
        import tensorflow as tf
        record = next(iter(tf.data.TFRecordDataset(files[0])))
        jpeg, _, _ = records.parse_example(record, files[0], 10)
        with tf.io.TFRecordWriter(bad) as w:
            w.write(records.encode_example(jpeg.numpy(), 99, 28, 28))
    d = str(tmp_path / "run")
    code, out = finish(start(d, f"--gin_param=data.cache_dir = '{tmp_path / 'cache'}'"))
    assert code == 2, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"error: file '{bad}', record 0: "), last
    if damage == "label":
        assert "label 99 outside the declared range 1 .. 10" in last
    assert "model rgc_shallow" not in out  # found before the build
