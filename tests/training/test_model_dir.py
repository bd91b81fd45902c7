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

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def _damage_shard(path, good_from, bad_at: int, n_bad: int = 1):
    """Rewrites the shard ``path``: ``bad_at`` good records of ``good_from``, then ``n_bad``
    records of a good image with label 99 (past the 10 classes)."""
    import tensorflow as tf

    from tpu_convrnn.data import records
    good = list(tf.data.TFRecordDataset(good_from).take(bad_at + 1))
    jpeg, _, _ = records.parse_example(good[0], good_from, 10)
    with tf.io.TFRecordWriter(path) as w:
        for record in good[:bad_at]:
            w.write(record.numpy())
        for _ in range(n_bad):
            w.write(records.encode_example(jpeg.numpy(), 99, 28, 28))


@pytest.mark.parametrize("split, bad_at", [("train", 0), ("train", 3), ("eval", 3)])
def test_a_bad_record_is_named_with_its_file_and_record(tmp_path, split, bad_at):
    """Record 0 is checked before the model is built; a later one fails in training or
    evaluation, and the error still names the file and the record."""
    from tpu_convrnn.data import embedded, records
    info = embedded.write_embedded(str(tmp_path / "cache"))
    files = records.list_files(info[f"{split}_pattern"])
    bad = files[-1]
    # (training draws 128 of ~3,900 shuffled records: many bad ones, so that it meets one)
    _damage_shard(bad, files[0], bad_at, n_bad=500 if split == "train" else 1)
    d = str(tmp_path / "run")
    code, out = finish(start(d, f"--gin_param=data.cache_dir = '{tmp_path / 'cache'}'"))
    assert code == 2, out[-3000:]
    last = out.strip().splitlines()[-1]
    where = f"file '{bad}', record {bad_at}"
    assert last.startswith(f"error: {where}: " if bad_at == 0 else
                           f"error: bad input in {where} (0-based): "), last
    assert "label 99 outside the declared range 1 .. 10" in last
    assert ("model rgc_shallow" in out) == (bad_at > 0)  # record 0: found before the build


def test_skip_bad_skips_and_counts_bad_evaluation_records(tmp_path):
    from tpu_convrnn.data import embedded, records
    info = embedded.write_embedded(str(tmp_path / "cache"))
    files = records.list_files(info["eval_pattern"])
    _damage_shard(files[-1], files[0], 3)  # that shard now holds 4 records, one of them bad
    expected = sum(records.count_records(files))
    d = str(tmp_path / "run")
    code, out = finish(start(d, f"--gin_param=data.cache_dir = '{tmp_path / 'cache'}'",
                             "--gin_param=data.skip_bad = True"))
    assert code == 0, out[-3000:]
    metrics = json.load(open(os.path.join(d, "eval", "metrics.json")))
    assert [m["num_skipped"] for m in metrics] == [1, 1]
    assert [m["num_examples"] for m in metrics] == [expected - 1] * 2
    assert "1 bad records skipped (data.skip_bad)" in out


@pytest.mark.parametrize("content, why", [
    (b"[1, 2]", "not a JSON object"),
    (b'{"host": "h", "pid": "abc", "started": 0, "heartbeat": 0}', "missing or odd field"),
    (b'{"pid": 123}', "missing or odd field"),
    (b'{"host": "h", "pid": 0, "started": 0, "heartbeat": 0}', "with pid 0"),
    (b"\xff\xfe not json", "an unreadable LOCK"),
])
def test_an_odd_lock_is_taken_over_as_garbage_saying_so(tmp_path, content, why, messages):
    d = str(tmp_path / "run")
    os.makedirs(d)
    with open(os.path.join(d, model_dir_lib.LOCK_FILE), "wb") as f:
        f.write(content)
    said = messages
    with model_dir_lib.hold(d):
        holder = json.load(open(os.path.join(d, model_dir_lib.LOCK_FILE)))
        assert holder["pid"] == os.getpid()
    assert len(said) == 1 and said[0].startswith(f"taking over {d}/LOCK") and why in said[0]


def test_a_heartbeat_from_the_future_is_judged_by_the_files_age(tmp_path, messages):
    d = str(tmp_path / "run")
    os.makedirs(d)
    lock = os.path.join(d, model_dir_lib.LOCK_FILE)
    now = time.time()
    with open(lock, "w") as f:  # another host whose clock runs an hour ahead
        json.dump({"host": "elsewhere", "pid": 4242, "started": now + 3600,
                   "heartbeat": now + 3600}, f)
    said = messages
    with pytest.raises(model_dir_lib.ModelDirInUse, match="pid 4242 on host elsewhere"):
        with model_dir_lib.hold(d):
            pass  # a fresh file: the holder may be alive
    assert any("3600 s in the future" in m and "host elsewhere" in m for m in said), said
    old = now - model_dir_lib.STALE_AFTER_S - 60
    os.utime(lock, (old, old))  # not written for longer than the stale limit: taken over
    said.clear()
    with model_dir_lib.hold(d):
        pass
    assert said[-1].startswith(f"taking over {lock} from pid 4242 on host elsewhere")


def test_a_read_only_model_dir_is_a_one_line_error_before_the_build(tmp_path, small_disk):
    read_only = small_disk("ro", "read_only")
    existing = small_disk("size=1m", "existing")
    os.makedirs(existing / "run" / "checkpoints")
    small_disk.remount(existing, "ro")  # a model dir that exists, now read-only
    for d in (str(read_only / "run"), str(existing / "run")):
        code, out = finish(start(d, mode="train"))
        assert code == 2, out[-3000:]
        last = out.strip().splitlines()[-1]
        assert last == f"error: --model_dir {d!r} is not writable: Read-only file system", last
        assert "model rgc_shallow" not in out and "Traceback" not in out


def test_a_full_disk_at_a_save_keeps_the_previous_checkpoint(tmp_path, small_disk):
    """One tiny checkpoint is about 0.7 MB: a 1.2 MB disk holds one, not two."""
    disk = small_disk("size=1200k")
    d = str(disk / "run")
    ckpts = os.path.join(d, "checkpoints")
    code, out = finish(start(d, "--gin_param=train.train_steps = 2", mode="train"))
    assert code == 0, out[-3000:]
    code, out = finish(start(d, mode="train"))
    assert code == 1, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"error: SaveFailed: checkpoint step 4 could not be written to "
                           f"{ckpts} ("), last
    assert "No space left on device" in last and f"newest kept checkpoint is {ckpts}/ckpt-2" \
        in last and "Traceback" not in out
    assert sorted(n for n in os.listdir(ckpts) if n.startswith("ckpt-")) == [
        "ckpt-2.data-00000-of-00001", "ckpt-2.index"]  # nothing of the failed save left
    small_disk.remount(disk, "size=4m")  # space freed: the run resumes from ckpt-2
    code, out = finish(start(d, mode="train"))
    assert code == 0, out[-3000:]
    assert f"resumed from checkpoint {ckpts}/ckpt-2 at step 2" in out
    assert "train: done at step 4" in out


def test_sigterm_saves_and_the_process_exits_at_once(tmp_path):
    d = str(tmp_path / "run")
    proc = start(d, "--gin_param=train.train_steps = 400", mode="train")
    out = kill_after(proc, "step 2: saved checkpoint", sig=signal.SIGTERM)
    assert proc.returncode == 0, out[-3000:]
    lines = out.strip().splitlines()
    saved = [line for line in lines if line.startswith("SIGTERM received: checkpoint saved")]
    assert len(saved) == 1, out[-3000:]
    step = int(lines[-1].split("preempted at step ")[1].split(";")[0])
    assert lines[-1].startswith(f"train: preempted at step {step}; exiting ") and \
        lines[-1].endswith(" s after the signal"), lines[-1]
    assert f"ckpt-{step}.index" in os.listdir(os.path.join(d, "checkpoints"))
    assert not os.path.exists(os.path.join(d, model_dir_lib.LOCK_FILE))  # released


def test_a_full_disk_at_the_metrics_is_a_one_line_error_keeping_the_checkpoint(tmp_path,
                                                                                 small_disk):
    """The model dir is writable when the run starts; its eval folder (a small disk of its own)
    is full when the metrics come."""
    d = tmp_path / "run"
    d.mkdir()
    disk = small_disk("size=64k", "run/eval")
    try:  # fill it
        with open(disk / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError:
        pass
    code, out = finish(start(str(d), "--gin_param=train.train_steps = 2"))
    assert code == 2, out[-3000:]  # refused before the first training step
    assert out.strip().splitlines()[-1] == (f"error: the eval folder '{d}/eval' is not writable:"
                                            " No space left on device")
    os.truncate(disk / "filler", os.path.getsize(disk / "filler") - 4096)  # room for one page:
    code, out = finish(start(str(d), "--gin_param=train.train_steps = 2"))  # the event file's
    assert code == 1, out[-3000:]
    last = out.strip().splitlines()[-1]
    metrics = os.path.join(d, "eval", "metrics.json")
    assert last == (f"error: MetricsNotWritten: the metrics of step 2 could not be written to "
                    f"{metrics} (No space left on device); the older entries and the checkpoint "
                    f"are kept: evaluate again (--mode=eval) once the disk has room"), last
    assert "Traceback" not in out and not os.path.exists(metrics)
    assert "ckpt-2.index" in os.listdir(os.path.join(d, "checkpoints"))
    os.remove(disk / "filler")
    code, out = finish(start(str(d), mode="eval"))
    assert code == 0, out[-3000:]
    assert metric_steps(str(d)) == [2]


_RACER = """
import os, sys, time
from tpu_convrnn.training import model_dir
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):  # all start together
    time.sleep(0.002)
try:
    with model_dir.hold(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
except model_dir.ModelDirInUse:
    print("refused", flush=True)
"""


def _racer(d, go, hold_s):
    return subprocess.Popen([sys.executable, "-c", _RACER, d, go, str(hold_s)], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, text=True)


def test_runs_starting_together_on_one_dir_hold_it_one_at_a_time_and_the_holder_is_named(
        tmp_path):
    """Six processes take the same model dir at the same instant: exactly one holds it (the
    check-and-write of the LOCK is exclusive); while it does, ``live_holder`` names its pid,
    and once it is killed the dir is free."""
    d, go = str(tmp_path / "run"), str(tmp_path / "go")
    procs = [_racer(d, go, 5) for _ in range(6)]
    assert all(p.stdout.readline().strip() == "ready" for p in procs)
    open(go, "w").close()
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert sorted(o[-1] for o in outs) == ["held"] + ["refused"] * 5, outs
    assert model_dir_lib.live_holder(d) is None  # released
    holder = _racer(d, go, 300)
    assert [holder.stdout.readline().strip() for _ in range(2)] == ["ready", "held"]
    assert model_dir_lib.live_holder(d)["pid"] == holder.pid
    holder.kill()
    holder.wait()
    assert model_dir_lib.live_holder(d) is None  # a dead holder's LOCK holds nothing
