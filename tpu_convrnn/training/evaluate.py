"""Evaluation: top-1/top-5 of the readout and of the logits at every time step.

``evaluate(model, strategy, eval_fn)`` runs every held-out example exactly once (padding is
masked out) and returns a metrics dict; ``record_metrics(model_dir, metrics)`` appends it to
``<model_dir>/eval/metrics.json`` (one entry per evaluated checkpoint step, replacing an older
entry of the same step) and redraws ``<model_dir>/eval/accuracy_over_time.png``.

metrics.json entries: ``step``, ``top1``, ``top5`` (the model's readout, e.g. last step or
max_conf), ``top1_per_step``, ``top5_per_step`` (lists over t = 0..T-1), ``num_examples`` (the
images scored) and, from a run, ``num_skipped`` (bad records dropped with ``data.skip_bad``).
"""
from __future__ import annotations

import io
import json

import tensorflow as tf

from tpu_convrnn import files

METRICS_FILE = "metrics.json"
PLOT_FILE = "accuracy_over_time.png"


def _correct(logits, labels, k):
    return tf.cast(tf.math.in_top_k(labels, tf.cast(logits, tf.float32), k), tf.float32)


def make_eval_step(model, strategy):
    """A ``tf.function`` (distributed batch) -> summed counts over replicas (traced without
    AutoGraph, as the training loop: nothing in the model branches on a tensor)."""
    def step_fn(batch):
        out = model.unroll(batch["image"], record=["logits"])
        labels, mask = batch["label"], tf.cast(batch["mask"], tf.float32)
        readout = model.decode(out["window_logits"])
        per_step = out["logits"]
        return {
            "top1": tf.reduce_sum(_correct(readout, labels, 1) * mask),
            "top5": tf.reduce_sum(_correct(readout, labels, 5) * mask),
            "top1_per_step": tf.stack([tf.reduce_sum(_correct(z, labels, 1) * mask)
                                       for z in per_step]),
            "top5_per_step": tf.stack([tf.reduce_sum(_correct(z, labels, 5) * mask)
                                       for z in per_step]),
            "num_examples": tf.reduce_sum(mask)}

    @tf.function(autograph=False)
    def step(batch):
        counts = strategy.run(step_fn, (batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in counts.items()}
    return step


class EvaluationStopped(Exception):
    """``stop()`` became true during an evaluation (e.g. SIGTERM): nothing was recorded."""


def evaluate(model, strategy, eval_fn, step: int = 0, progress=None, eval_step=None,
             stop=None) -> dict:
    """Accuracy over the whole evaluation set. ``eval_fn``: ``input_context -> dataset`` of
    masked batches (``DataConfig.eval_fn``). ``progress``: optional ``update(n)`` per batch.
    ``stop``: checked before every batch; when it returns True, raises ``EvaluationStopped``."""
    eval_step = eval_step or make_eval_step(model, strategy)
    totals = None
    for batch in strategy.distribute_datasets_from_function(eval_fn):
        if stop is not None and stop():
            raise EvaluationStopped(f"evaluation at step {step} stopped")
        counts = {k: v.numpy() for k, v in eval_step(batch).items()}
        totals = counts if totals is None else {k: totals[k] + counts[k] for k in totals}
        if progress is not None:
            progress.update(1)
    if totals is None or totals["num_examples"] == 0:
        raise ValueError("the evaluation set is empty")
    n = float(totals["num_examples"])
    return {"step": int(step), "top1": float(totals["top1"]) / n,
            "top5": float(totals["top5"]) / n,
            "top1_per_step": [float(c) / n for c in totals["top1_per_step"]],
            "top5_per_step": [float(c) / n for c in totals["top5_per_step"]],
            "num_examples": int(n)}


def read_metrics(eval_dir: str) -> list:
    path = f"{eval_dir}/{METRICS_FILE}"
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


class MetricsNotWritten(RuntimeError):
    """metrics.json or its plot could not be written (a full or read-only disk): one line
    naming the file, the step and the reason; the older entries and the checkpoint are kept."""


def record_metrics(eval_dir: str, metrics: dict, writer=None, chance=None) -> list:
    """Appends ``metrics`` to metrics.json (atomically), draws the plot, writes TensorBoard
    scalars to ``writer`` if given. Returns all entries, sorted by step. Raises
    ``MetricsNotWritten`` when the disk refuses the file or the plot."""
    entries = [e for e in read_metrics(eval_dir) if e["step"] != metrics["step"]] + [metrics]
    entries.sort(key=lambda e: e["step"])
    path = f"{eval_dir}/{METRICS_FILE}"
    kept = "the older entries and the checkpoint are kept"
    try:
        tf.io.gfile.makedirs(eval_dir)
        files.write_atomic(path, json.dumps(entries, indent=1))
        path, kept = f"{eval_dir}/{PLOT_FILE}", f"{METRICS_FILE} holds them"
        plot_accuracy_over_time(entries, path, chance)
    except (OSError, tf.errors.OpError) as e:
        raise MetricsNotWritten(
            f"the metrics of step {metrics['step']} could not be written to {path} "
            f"({files.error_reason(e)}); {kept}: evaluate again (--mode=eval) once the disk has room") from None
    if writer is not None:
        with writer.as_default(step=metrics["step"]):
            tf.summary.scalar("top1", metrics["top1"])
            tf.summary.scalar("top5", metrics["top5"])
            for t, acc in enumerate(metrics["top1_per_step"]):
                tf.summary.scalar(f"top1_at_step/{t:02d}", acc)
        writer.flush()
    return entries


def plot_accuracy_over_time(entries: list, path: str, chance=None):
    """Top-1 against time step, one line per evaluated checkpoint (newest lightest), with the
    chance level (``1 / classes``) dashed if given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    cmap = plt.get_cmap("viridis")
    for i, e in enumerate(entries):
        shade = cmap(0.15 + 0.7 * (i + 1) / len(entries))
        ax.plot(range(len(e["top1_per_step"])), e["top1_per_step"], marker="o", markersize=3,
                color=shade, label=f"step {e['step']} (readout {e['top1']:.3f})")
    if chance:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("time step t (one step per edge, ~10 ms)")
    ax.set_ylabel("top-1 accuracy of the logits at t")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if len(entries) <= 8:  # else the colour order tells the checkpoints apart
        ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"held-out accuracy over time ({entries[-1]['num_examples']} images)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buf.getvalue())
