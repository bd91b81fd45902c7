"""The training loop: replica equivalence, several workers, resume after a kill, preemption,
checkpoint fallback, NaN stop. Runs that need their own process use tests/train_runs.py."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from small_graphs import S, small_graph

from tpu_convrnn.training.experiment import train_steps
from tpu_convrnn.training.objective import cross_entropy
from tpu_convrnn.training.train import TrainConfig, Trainer, TrainingDiverged

RUNS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "train_runs.py")


def _script(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, RUNS, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), out + err


def test_four_replicas_give_the_single_replica_loss_and_gradients(tmp_path):
    out = str(tmp_path / "w.npz")
    result, _ = _finish(_script("replicas", out))
    assert result["mirrored"]["replicas"] == 4 and result["single"]["replicas"] == 1
    np.testing.assert_allclose(result["mirrored"]["loss"], result["single"]["loss"], rtol=1e-6)
    w = np.load(out)
    names = [k[len("start/"):] for k in w if k.startswith("start/")]
    moved = 0
    for k in names:  # SGD, no momentum: update = -lr * clipped gradient of the global batch
        start = w["start/" + k]
        g1, g4 = start - w["single/" + k], start - w["mirrored/" + k]
        # Summation order differs between 1 and 4 replicas, and each updated weight is rounded
        # to float32: allow float32 round-off of the sums plus one ulp of the weight itself.
        tol = 1e-4 * np.abs(g1) + 1e-6 * np.abs(g1).max() + 1e-12 + np.spacing(np.abs(start))
        worst = np.unravel_index(np.argmax(np.abs(g4 - g1) - tol), g1.shape)
        assert np.all(np.abs(g4 - g1) <= tol), (k, worst, g4[worst], g1[worst], start[worst])
        moved += bool(np.abs(g1).max() > 0)
    assert moved >= len(names) // 2  # the comparison is not vacuous


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_workers_train_a_few_steps(tmp_path):
    hosts = [f"localhost:{_free_port()}" for _ in range(2)]
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}))
        procs.append(_script("worker", str(tmp_path), env=env))
    results = [_finish(p) for p in procs]
    for result, log in results:
        assert result == {"status": "done", "step": 4}
        assert "2 replica(s)" in log
    ckpts = tf.train.CheckpointManager(tf.train.Checkpoint(), str(tmp_path / "checkpoints"), 3)
    assert ckpts.latest_checkpoint.endswith("ckpt-4")
    assert not (tmp_path / "checkpoints" / "tmp_worker1").exists()  # scratch removed


def test_sigterm_to_one_worker_stops_all_at_one_saved_step(tmp_path):
    """A preemption notice reaches one VM: every worker saves the same step and stops (a
    worker that saved alone would leave the others blocked in their next all-reduce)."""
    hosts = [f"localhost:{_free_port()}" for _ in range(2)]
    procs = []
    for i in range(2):
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CONFIG=json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}))
        procs.append(_script("worker", str(tmp_path), "2000", env=env))
    for line in procs[1].stdout:
        if line.startswith("step 4/"):
            break
    procs[1].send_signal(signal.SIGTERM)
    results = [_finish(p, timeout=240) for p in procs]
    steps = {result["step"] for result, _ in results}
    assert all(result["status"] == "preempted" for result, _ in results), results
    assert len(steps) == 1 and 4 <= steps.pop() < 2000
    assert "SIGTERM on another host: will save and stop with it" in results[0][1]
    ckpts = tf.train.CheckpointManager(tf.train.Checkpoint(), str(tmp_path / "checkpoints"), 3)
    assert ckpts.latest_checkpoint.endswith(f"ckpt-{results[0][0]['step']}")


def _wait_for_checkpoint(model_dir, name, proc, timeout=120):
    index = os.path.join(model_dir, "checkpoints", "checkpoint")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if os.path.exists(index) and f"{name}\"" in open(index).read():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"{name} never appeared")


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    straight = _script("resume", str(tmp_path / "a"), "8", str(tmp_path / "a.npz"))
    killed = _script("resume", str(tmp_path / "b"), "8", str(tmp_path / "b.npz"))
    _wait_for_checkpoint(str(tmp_path / "b"), "ckpt-4", killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    result, log = _finish(_script("resume", str(tmp_path / "b"), "8", str(tmp_path / "b.npz")))
    assert result == {"status": "done", "start": 4, "step": 8}
    assert "resumed from checkpoint" in log and "ckpt-4 at step 4" in log
    assert _finish(straight)[0]["step"] == 8
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a) == sorted(b) and any(k.startswith("optimizer/") for k in a)
    for k in a:  # weights, momentum slots and the step counter
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    proc = _script("resume", str(tmp_path), "20", str(tmp_path / "w.npz"))
    _wait_for_checkpoint(str(tmp_path), "ckpt-2", proc)
    proc.send_signal(signal.SIGTERM)
    result, log = _finish(proc)
    assert result["status"] == "preempted" and result["step"] == 4
    assert "SIGTERM received: checkpoint saved" in log and "s after the signal" in log
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


# ------------------------------------------------------------------ in-process
def _batches(images, labels, per_step=None):
    def fn(ctx):
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images) // (
            per_step or 1)).repeat()
    return lambda seed: fn


def _cfg(**kw):
    base = dict(global_batch=4, train_steps=4, base_lr=0.05, steps_per_loop=2,
                checkpoint_every=2, warmup_steps=0)
    return TrainConfig(**{**base, **kw})


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, S, S, 3)).astype(np.float32), rng.integers(0, 7, n)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, messages):
    x, y = _data()
    first = Trainer(small_graph, _cfg(), tf.distribute.get_strategy(), str(tmp_path))
    assert train_steps(first, _batches(x, y), 4) == ("done", None)
    ckpt_dir = tmp_path / "checkpoints"
    data = next(ckpt_dir.glob("ckpt-4.data-*"))
    data.write_bytes(data.read_bytes()[:10])  # a save cut off by preemption
    second = Trainer(small_graph, _cfg(), tf.distribute.get_strategy(), str(tmp_path))
    assert second.restore() == 2
    assert any("ckpt-4 could not be restored" in m and "falling back to" in m and "ckpt-2" in m
               for m in messages), messages
    w2 = tf.train.load_checkpoint(str(ckpt_dir / "ckpt-2"))
    kernel = [v for v in second.model.weights if v.path.endswith("conv1/pre_0/kernel")][0]
    np.testing.assert_array_equal(
        kernel.numpy(), w2.get_tensor("model/small..conv1..pre_0..kernel/.ATTRIBUTES/"
                                      "VARIABLE_VALUE"))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    x, y = _data(8)
    x[4:] = np.nan  # steps 1-4 see the good half (batch 4), step 5 the NaN half... per loop
    cfg = _cfg(train_steps=8, steps_per_loop=2, checkpoint_every=2)
    images = np.concatenate([x[:4]] * 4 + [x[4:]] * 4)  # steps 1-4 good, 5-8 NaN
    labels = np.concatenate([y[:4]] * 8)
    trainer = Trainer(small_graph, cfg, tf.distribute.get_strategy(), str(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"loss became NaN at step 5 .*ckpt-4"):
        train_steps(trainer, _batches(images, labels, per_step=8), cfg.train_steps)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def test_a_variable_no_gradient_reaches_is_left_unchanged_and_named(tmp_path, messages):
    """max_conf's beta sits behind an argmax (spec 1.6): training skips it, as the original's
    TF1 optimizer did, instead of failing on a None gradient (ugrnn_intermediate_t30_tmaxconf
    could not train)."""
    x, y = _data()
    trainer = Trainer(lambda: small_graph(readout={"kind": "max_conf"}), _cfg(),
                      tf.distribute.get_strategy(), str(tmp_path))
    before = {v.path: v.numpy().copy() for v in trainer.model.trainable_variables}
    train_steps(trainer, _batches(x, y), 4)
    after = {v.path: v.numpy() for v in trainer.model.trainable_variables}
    beta = [k for k in before if k.endswith("softmax_beta")]
    assert len(beta) == 1
    np.testing.assert_array_equal(after[beta[0]], before[beta[0]])
    moved = [k for k in before if not np.array_equal(after[k], before[k])]
    assert len(moved) == len(before) - 1, sorted(set(before) - set(moved))
    assert any(m.startswith("no gradient reaches") and beta[0] in m for m in messages)


def test_resume_reseeds_the_input_with_the_step(tmp_path):
    x, y = _data()
    seeds = []

    def data(seed):
        seeds.append(seed)
        return _batches(x, y)(seed)
    t = Trainer(small_graph, _cfg(seed=7), tf.distribute.get_strategy(), str(tmp_path))
    train_steps(t, data, to_step=2)
    t2 = Trainer(small_graph, _cfg(seed=7), tf.distribute.get_strategy(), str(tmp_path))
    t2.restore()
    train_steps(t2, data, to_step=4)
    assert seeds == [7, 9] and t2.step == 4


def test_cross_entropy_with_label_smoothing_matches_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (5, 7)).astype(np.float32)
    y = rng.integers(0, 7, 5)
    q = np.full((5, 7), 0.1 / 7)
    q[np.arange(5), y] += 0.9
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(cross_entropy(y, z, 7, 0.1).numpy(), -(q * logp).sum(1),
                               rtol=1e-5)


def test_gradient_clipping_by_value_and_by_global_norm():
    from tpu_convrnn.training.objective import clip
    rng = np.random.default_rng(1)
    grads = [rng.normal(0, 3, (4, 3)).astype(np.float32), rng.normal(0, 3, 5).astype(np.float32)]
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    for got, g in zip(clip(grads, clip_norm=norm / 4), grads):  # scaled by a quarter
        np.testing.assert_allclose(np.asarray(got), g / 4, rtol=1e-5)
    for got, g in zip(clip(grads, clip_norm=2 * norm), grads):  # under the norm: unchanged
        np.testing.assert_allclose(np.asarray(got), g, rtol=1e-6)
    for got, g in zip(clip(grads, clip_value=1.5), grads):
        np.testing.assert_array_equal(np.asarray(got), np.clip(g, -1.5, 1.5))


def test_config_errors_name_the_binding():
    with pytest.raises(ValueError, match="train.global_batch = 0"):
        _cfg(global_batch=0).check()
    with pytest.raises(ValueError, match=r"train.warmup_steps = 20 must lie in \[0, "
                                         r"train.train_steps = 4\]"):
        _cfg(warmup_steps=20, train_steps=4).check()
    with pytest.raises(ValueError, match="set at most one"):
        _cfg(clip_value=1.0, clip_norm=1.0).check()
    with pytest.raises(ValueError, match="train.optimizer = 'rmsprop': expected one of sgd, adam"):
        _cfg(optimizer="rmsprop").check()


def test_adam_steps_as_numpy_adam():
    """train.optimizer = 'adam': one step moves each weight by lr * m / (sqrt(v) + eps) with
    Keras' bias-corrected moments (NumPy: after one step m_hat = g, v_hat = g^2)."""
    import keras
    from tpu_convrnn.training.train import make_optimizer
    w = keras.Variable(np.array([1.0, -2.0, 3.0], np.float32))
    g = np.array([0.5, -0.1, 2.0], np.float32)
    opt = make_optimizer(_cfg(optimizer="adam"), 0.01)
    assert isinstance(opt, keras.optimizers.Adam)
    opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
    np.testing.assert_allclose(np.asarray(w), [1, -2, 3] - 0.01 * g / (np.abs(g) + 1e-7),
                               rtol=1e-5)
    sgd = make_optimizer(_cfg(), 0.01)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov


def test_graph_optimization_off_is_an_execution_setting_of_the_traced_loop(tmp_path):
    """``train.graph_optimization = False`` turns Grappler off for what is traced after the
    Trainer is built, and the next default Trainer turns it on again; the trained weights are
    the same to round-off either way."""
    import keras
    x, y = _data()
    weights = {}
    try:
        for on in (False, True):
            keras.utils.set_random_seed(0)
            t = Trainer(small_graph, _cfg(graph_optimization=on), tf.distribute.get_strategy(),
                        str(tmp_path / str(on)))
            options = tf.config.optimizer.get_experimental_options()
            assert options.get("disable_meta_optimizer", False) is (not on), options
            train_steps(t, _batches(x, y), 4)
            weights[on] = [v.numpy() for v in t.model.trainable_variables]
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    assert len(weights[False]) == len(weights[True]) > 0
    for a, b in zip(weights[False], weights[True]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
