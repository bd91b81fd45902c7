"""TFDS datasets through the run's own pipeline, offline: ``dummy_mnist`` (tensorflow-datasets'
own test builder) writes a real 20 + 20 example dataset; ``mock_data`` stands in for ImageNet."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tensorflow_datasets.testing  # noqa: F401  (registers dummy_mnist)

from tpu_convrnn.data import pipeline, tfds_source
from tpu_convrnn.data.sources import DataConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A prepared dummy_mnist (train and test, 20 examples each, 10 classes)."""
    d = str(tmp_path_factory.mktemp("tfds"))
    tfds.testing.DummyMnist(data_dir=d).download_and_prepare()
    return d


def test_tfds_dataset_goes_through_the_same_preprocessing(tfds_dir):
    builder = tfds_source.prepared_builder("dummy_mnist", data_dir=tfds_dir)
    encoded, label, _ = next(iter(tfds_source.read(builder, "train")))
    assert encoded.dtype == tf.string  # kept encoded: crop before decode
    assert tfds_source.num_classes(builder) == 10 and 0 <= int(label) < 10  # 0-based labels
    cfg = DataConfig(source="tfds", tfds_name="dummy_mnist", tfds_eval_split="test",
                     tfds_data_dir=tfds_dir).resolved()
    assert cfg.num_classes == 10 and cfg.label_offset == 0
    batch = next(iter(cfg.eval_fn(16, 3)(None)))
    assert batch["image"].shape == (3, 16, 16, 3) and batch["image"].dtype == tf.uint8
    images, labels = next(iter(cfg.train_fn(16, 3, seed=0)(None)))
    assert images.shape == (3, 16, 16, 3) and labels.dtype == tf.int32


def test_imagenet2012_with_a_manual_dir(tmp_path):
    with tfds.testing.mock_data(num_examples=2):
        builder = tfds_source.prepared_builder("imagenet2012", manual_dir=str(tmp_path))
        assert tfds_source.num_classes(builder) == 1000
        assert len(list(tfds_source.read(builder, "validation"))) == 2


def test_evaluation_reads_every_example_once_over_hosts(tfds_dir):
    """Two hosts each read an even part of the split: together every example exactly once,
    and the same number of batches on both (padding masked)."""
    builder = tfds_source.prepared_builder("dummy_mnist", tfds_dir)
    keys = [k.numpy() for _, _, k in tfds_source.read(builder, "test")]
    cfg = pipeline.InputConfig(file_pattern="", num_classes=10, image_size=8, label_offset=0)
    examples = tfds_source.eval_examples(builder, "test")
    seen, lengths = [], []
    for host in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=host,
                                         num_replicas_in_sync=2)
        batches = list(pipeline.eval_dataset(cfg, 6, ctx, examples=examples))  # 3 per host
        lengths.append(len(batches))
        seen += [k for b in batches for k, m in zip(b["key"].numpy(), b["mask"].numpy()) if m]
    assert len(keys) == 20 and len(set(keys)) == 20
    assert sorted(seen) == sorted(keys)
    assert lengths == [4, 4]  # ceil(10 / 3) on each host


def test_a_main_run_trains_and_evaluates_on_a_tfds_dataset(tfds_dir, tmp_path):
    d = str(tmp_path / "run")
    out = subprocess.run(
        [sys.executable, "-m", "tpu_convrnn.main", "--gin_file=gin/models/rgc_shallow.gin",
         "--gin_file=gin/local.gin", "--gin_param=model.width = 0.0625",
         "--gin_param=model.times = 6", "--gin_param=train.train_steps = 2",
         "--gin_param=train.steps_per_loop = 2", "--gin_param=train.warmup_steps = 0",
         "--gin_param=data.source = 'tfds'", "--gin_param=data.tfds_name = 'dummy_mnist'",
         "--gin_param=data.tfds_eval_split = 'test'", "--gin_param=data.augment = 'none'",
         f"--gin_param=data.tfds_data_dir = '{tfds_dir}'", "--mode=train_and_eval",
         f"--model_dir={d}"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    metrics = json.load(open(os.path.join(d, "eval", "metrics.json")))
    assert [m["step"] for m in metrics] == [2] and metrics[0]["num_examples"] == 20


@pytest.mark.parametrize("settings, message", [
    (dict(), "data.source = 'tfds' needs data.tfds_name"),
    (dict(tfds_name="no_such_dataset"), "data.tfds_name = 'no_such_dataset': "
                                        "tensorflow-datasets has no such dataset"),
])
def test_tfds_settings_errors_name_the_binding(settings, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(source="tfds", **settings).resolved()


def test_a_dataset_that_is_not_prepared_is_refused_without_a_download(tmp_path):
    with pytest.raises(ValueError, match=r"data.tfds_name = 'mnist' is not prepared in .*"
                                         r"set data.tfds_download = True"):
        DataConfig(source="tfds", tfds_name="mnist", tfds_data_dir=str(tmp_path)).resolved()
    assert not (tmp_path / "downloads").exists()  # nothing was fetched or started
