"""One experiment run: train, evaluate, or both, from plain configs (gin builds them in main).

    run_experiment("train_and_eval", "runs/rgc", model_fn, DataConfig(source="embedded"),
                   TrainConfig(global_batch=32, train_steps=200))

The model dir holds ``checkpoints/``, ``train/`` (TensorBoard), ``eval/`` (TensorBoard,
``metrics.json``, ``accuracy_over_time.png``) and the gin configs. Only the chief writes
configs, summaries and metrics.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tpu_convrnn import distribute
from tpu_convrnn.data.sources import DataConfig
from tpu_convrnn.evaluate import evaluate, make_eval_step, record_metrics
from tpu_convrnn.progress import Progress
from tpu_convrnn.train import TrainConfig, Trainer

MODES = ("train", "eval", "train_and_eval")


def run_experiment(mode: str, model_dir: str, model_fn, data: DataConfig, cfg: TrainConfig,
                   tpu: str | None = None, log=print, on_start=None) -> dict:
    """Runs ``mode``; returns ``{"status": "done"|"preempted", "step": int, "metrics": dict}``.

    ``on_start(trainer)`` runs once the model exists (e.g. to write the operative config).
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if not model_dir:
        raise ValueError(f"--mode={mode} needs --model_dir (checkpoints, summaries, metrics)")
    data = data.resolved()
    strategy = distribute.make_strategy(tpu)
    log(f"strategy: {distribute.describe(strategy)}")
    keras.utils.set_random_seed(cfg.seed)  # the same initial weights for the same seed
    trainer = Trainer(model_fn, cfg, strategy, model_dir, log=log)
    model = trainer.model
    log(f"model {model.name}: {model.count_params():,} parameters, T={model.times}, "
        f"{model.image_size}x{model.image_size} images, {model.num_classes} outputs; data: "
        f"{data.source} {data.train_pattern or ''}; global batch {cfg.global_batch}, "
        f"{cfg.train_steps} steps")
    if model.num_classes < data.num_classes:
        raise ValueError(f"the model has {model.num_classes} outputs but the data has "
                         f"{data.num_classes} classes (set model.num_classes)")
    if on_start is not None:
        on_start(trainer)
    start = trainer.restore()
    result = {"status": "done", "step": start, "metrics": None}
    eval_dir = f"{model_dir}/eval"
    writer = tf.summary.create_file_writer(eval_dir) if trainer.chief and mode != "train" \
        else None
    eval_batch = cfg.eval_batch or cfg.global_batch
    eval_fn = data.eval_fn(model.image_size, eval_batch) if mode != "train" else None
    eval_step = make_eval_step(model, strategy) if eval_fn else None

    def run_eval(step, _path=None):
        batches = -(-eval_fn.num_examples // eval_batch)
        with Progress(batches, "eval", unit="batches") as bar:
            metrics = evaluate(model, strategy, eval_fn, step, bar, eval_step)
        log(f"eval at step {step}: top1 {metrics['top1']:.4f}  top5 {metrics['top5']:.4f}  "
            f"({metrics['num_examples']} images); top1 by time step: "
            + " ".join(f"{a:.2f}" for a in metrics["top1_per_step"]))
        if trainer.chief:
            record_metrics(eval_dir, metrics, writer, chance=1.0 / data.num_classes)
            log(f"wrote {eval_dir}/metrics.json and {eval_dir}/accuracy_over_time.png")
        result["metrics"] = metrics

    if mode == "eval":
        if trainer.checkpoints.latest is None:
            raise ValueError(f"--mode=eval: no checkpoint in {model_dir}/checkpoints")
        run_eval(start)
        return result
    image_size = model.image_size
    status = trainer.train(lambda seed: data.train_fn(image_size, cfg.global_batch, seed),
                           on_checkpoint=run_eval if mode == "train_and_eval" else None)
    result.update(status=status, step=trainer.step)
    return result

