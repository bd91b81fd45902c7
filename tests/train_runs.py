"""Training runs that tests/training/test_train.py starts in subprocesses (logical devices, several
workers, kills). Prints one JSON line with the results; writes weights to an .npz when asked.

    python tests/train_runs.py replicas OUT.npz
    python tests/train_runs.py worker MODEL_DIR [STEPS]   (TF_CONFIG set by the caller)
    python tests/train_runs.py resume MODEL_DIR STEPS OUT.npz
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if sys.argv[1] == "replicas":  # must happen before TensorFlow initialises its devices
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)

from small_graphs import S, small_graph  # noqa: E402

from tpu_convrnn import console  # noqa: E402
from tpu_convrnn.training.experiment import train_steps  # noqa: E402
from tpu_convrnn.training.train import TrainConfig, Trainer  # noqa: E402

console.to_console()

GLOBAL_BATCH = 8


def fixed_batches(seed=0):
    """``input_context -> dataset``: the same global batch every step, split over replicas."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (GLOBAL_BATCH, S, S, 3)).astype(np.uint8)
    y = rng.integers(0, 7, GLOBAL_BATCH).astype(np.int32)

    def fn(ctx):
        n, i = (1, 0) if ctx is None else (ctx.num_input_pipelines, ctx.input_pipeline_id)
        b = GLOBAL_BATCH if ctx is None else ctx.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices((x, y)).shard(n, i).batch(b).repeat()
    return fn


def weights(model):
    return {v.path: np.array(v.numpy()) for v in model.weights}


def replicas(out):
    """One step on 1 replica and on 4 logical CPUs, from the same weights and global batch."""
    cfg = TrainConfig(global_batch=GLOBAL_BATCH, train_steps=1, base_lr=0.1, momentum=0.0,
                      nesterov=False, clip_norm=1e-3, steps_per_loop=1, warmup_steps=0,
                      decay="constant", lr_base_batch=GLOBAL_BATCH)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    results, start = {}, None
    for name, strategy in (("single", tf.distribute.get_strategy()),
                           ("mirrored", tf.distribute.MirroredStrategy(cpus))):
        trainer = Trainer(small_graph, cfg, strategy, f"{out}.{name}")
        if start is None:
            start = [v.numpy() for v in trainer.model.weights]
        for v, w in zip(trainer.model.weights, start):
            v.assign(w)
        train_steps(trainer, lambda seed: fixed_batches(), cfg.train_steps)
        results[name] = trainer
    np.savez(out, **{f"start/{k}": w for k, w in zip(weights(results["single"].model), start)},
             **{f"{n}/{k}": w for n, t in results.items() for k, w in weights(t.model).items()})
    print(json.dumps({n: {"loss": t.history[-1][1], "replicas":
                          t.strategy.num_replicas_in_sync} for n, t in results.items()}))


def worker(model_dir, steps="4"):
    """A few steps under MultiWorkerMirroredStrategy (TF_CONFIG from the environment)."""
    from tpu_convrnn.data.sources import DataConfig
    from tpu_convrnn.training.experiment import train_and_evaluate
    cfg = TrainConfig(global_batch=GLOBAL_BATCH, train_steps=int(steps), base_lr=0.1,
                      steps_per_loop=2, checkpoint_every=2 if steps == "4" else 10_000)
    result = train_and_evaluate("train", model_dir, small_graph,
                                DataConfig(source="fake", num_classes=7), cfg)
    print(json.dumps({"status": result["status"], "step": result["step"]}))


def resume(model_dir, steps, out):
    """Trains to ``steps`` (resuming if model_dir has checkpoints), pausing 1 s after each
    checkpoint (every 2 steps) so a test can kill it there."""
    cfg = TrainConfig(global_batch=GLOBAL_BATCH, train_steps=int(steps), base_lr=0.1,
                      warmup_steps=2, steps_per_loop=2, checkpoint_every=2)
    import keras
    keras.utils.set_random_seed(0)
    trainer = Trainer(small_graph, cfg, tf.distribute.get_strategy(), model_dir)
    start = trainer.restore()
    status, fn = "done", lambda seed: fixed_batches()
    with trainer.sigterm_guard():
        while trainer.step < cfg.train_steps and status == "done":
            status, _ = train_steps(trainer, fn, to_step=trainer.step + cfg.checkpoint_every)
            time.sleep(1)
    np.savez(out, **weights(trainer.model),
             **{f"optimizer/{i}": v.numpy() for i, v in enumerate(trainer.optimizer.variables)})
    print(json.dumps({"status": status, "start": start, "step": trainer.step}))


if __name__ == "__main__":
    {"replicas": replicas, "worker": worker, "resume": resume}[sys.argv[1]](*sys.argv[2:])
