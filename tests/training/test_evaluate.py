import json

import numpy as np
import tensorflow as tf
from small_graphs import S, small_graph

from tpu_convrnn.training.evaluate import evaluate, plot_accuracy_over_time, read_metrics, record_metrics


def _masked_batches(images, labels, batch):
    n = len(images)
    pad = -n % batch
    data = {"image": np.concatenate([images, np.zeros((pad,) + images.shape[1:], np.float32)]),
            "label": np.concatenate([labels, np.zeros(pad, np.int32)]).astype(np.int32),
            "mask": np.array([1] * n + [0] * pad, np.int32)}
    return lambda ctx: tf.data.Dataset.from_tensor_slices(data).batch(batch)


def test_accuracy_at_every_step_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(0)
    model = small_graph(times=5, image_off=3)
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    images = rng.uniform(0, 1, (10, S, S, 3)).astype(np.float32)
    per_step = np.stack([np.asarray(z) for z in
                         model.unroll(images, record=["logits"])["logits"]])  # [T, N, C]
    # labels: half equal to the last step's argmax, so top-1 is neither 0 nor 1
    labels = np.where(np.arange(10) % 2 == 0, per_step[-1].argmax(-1),
                      per_step[-1].argmin(-1)).astype(np.int32)
    m = evaluate(model, tf.distribute.get_strategy(), _masked_batches(images, labels, 4), step=7)
    ranks = (per_step > np.take_along_axis(per_step, labels[None, :, None], 2)).sum(-1)  # [T, N]
    assert m["num_examples"] == 10 and m["step"] == 7
    np.testing.assert_allclose(m["top1_per_step"], (ranks < 1).mean(1), atol=1e-6)
    np.testing.assert_allclose(m["top5_per_step"], (ranks < 5).mean(1), atol=1e-6)
    assert m["top1"] == m["top1_per_step"][-1] == 0.5  # 'last' readout = the last step


def test_metrics_file_keeps_one_entry_per_step_and_draws_the_plot(tmp_path):
    def entry(step, acc):
        return {"step": step, "top1": acc, "top5": acc, "top1_per_step": [0.1, acc],
                "top5_per_step": [0.5, acc], "num_examples": 10}
    d = str(tmp_path / "eval")
    record_metrics(d, entry(200, 0.5))
    record_metrics(d, entry(100, 0.3))
    entries = record_metrics(d, entry(200, 0.6), tf.summary.create_file_writer(d))
    assert [e["step"] for e in entries] == [100, 200] and entries[1]["top1"] == 0.6
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == entries
    assert read_metrics(d) == entries
    assert (tmp_path / "eval" / "accuracy_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_accuracy_over_time(entries, str(tmp_path / "again.png"), chance=0.1)
    assert (tmp_path / "again.png").stat().st_size > 1000
