import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf

from data_fixtures import write_records
from tpu_convrnn.data import pipeline, records


def _cfg(pattern, **kw):
    return pipeline.InputConfig(file_pattern=pattern, num_classes=10, image_size=24,
                                shuffle_buffer=64, **kw)


def _ctx(n, i):
    return tf.distribute.InputContext(num_input_pipelines=n, input_pipeline_id=i,
                                      num_replicas_in_sync=n)


def test_train_batches_shapes_dtypes_and_labels(tmp_path):
    pattern, truth = write_records(tmp_path, "train", num_files=2, per_file=6)
    images, labels = next(iter(pipeline.train_dataset(_cfg(pattern), global_batch=4)))
    assert images.shape == (4, 24, 24, 3) and images.dtype == tf.uint8
    assert labels.dtype == tf.int32
    assert set(labels.numpy()) <= set(truth.values())  # 0-based after the parser


def test_same_seed_same_order_other_seed_differs(tmp_path):
    pattern, _ = write_records(tmp_path, "train", num_files=3, per_file=6)

    def first(seed, n=4):
        ds = pipeline.train_dataset(_cfg(pattern, seed=seed), global_batch=3)
        return [b[0].numpy() for b in ds.take(n)]
    a, b, c = first(1), first(1), first(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_autotune_off_gives_the_same_batches_without_tuning(tmp_path):
    pattern, _ = write_records(tmp_path, "train", num_files=3, per_file=6)
    on, off = _cfg(pattern, seed=3), _cfg(pattern, seed=3, autotune=False)
    assert pipeline.train_dataset(on, 3).options().autotune.enabled is not False
    for make in (lambda c: pipeline.train_dataset(c, global_batch=3).take(5),
                 lambda c: pipeline.eval_dataset(c, global_batch=4)):
        tuned, fixed = make(on), make(off)
        assert fixed.options().autotune.enabled is False
        for a, b in zip(tuned, fixed, strict=True):
            for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
                np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("num_files", [3, 6])
@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_eval_covers_every_example_exactly_once(tmp_path, hosts, num_files):
    pattern, truth = write_records(tmp_path, num_files=num_files, per_file=5)
    seen, steps = [], set()
    for h in range(hosts):
        ds = pipeline.eval_dataset(_cfg(pattern), global_batch=4 * hosts,
                                   input_context=_ctx(hosts, h))
        batches = list(ds)
        steps.add(len(batches))
        for b in batches:
            real = b["mask"].numpy() == 1
            seen += [k.decode() for k in b["key"].numpy()[real]]
            for k, lab in zip(b["key"].numpy()[real], b["label"].numpy()[real]):
                assert truth[k.decode()] == lab
            assert b["image"].shape[1:] == (24, 24, 3)
    assert sorted(seen) == sorted(truth)  # no example lost, none duplicated
    assert len(steps) == 1  # every host runs the same number of steps


def test_eval_steps_arithmetic():
    assert pipeline.eval_steps([5, 5, 5], global_batch=4, num_hosts=1) == 4
    assert pipeline.eval_steps([5, 5, 5, 1], global_batch=4, num_hosts=2) == 5  # 10/2 vs 6/2
    assert pipeline.eval_steps([7], global_batch=4, num_hosts=4) == 2  # records 2,2,2,1 per host


def test_bad_label_names_the_file(tmp_path):
    pattern, _ = write_records(tmp_path, num_files=1, per_file=3, label_fn=lambda i: 10)
    files = records.list_files(pattern)
    ds = pipeline.eval_dataset(_cfg(pattern), global_batch=2, file_counts=[3])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(ds)
    # what a run raises for it (``DataConfig.input_error``, from ``train_and_evaluate``)
    assert re.fullmatch(r"bad input in file '.*validation-00000-of-00001', record 0 \(0-based\): "
                        r"label 11 outside the declared range 1 \.\. 10",
                        str(records.explain(error.value, files, 10)))


def _write_corrupt(folder):
    path = f"{folder}/train-00001-of-00002"
    with tf.io.TFRecordWriter(path) as w:
        w.write(records.encode_example(b"\xff\xd8not really a jpeg", 3, 10, 10, key="broken"))
    return path


def test_undecodable_image_names_the_file(tmp_path):
    pattern, _ = write_records(tmp_path, "train", num_files=1, per_file=4)
    bad = _write_corrupt(tmp_path)
    files = records.list_files(f"{tmp_path}/train-*")
    ds = pipeline.train_dataset(_cfg(f"{tmp_path}/train-*"), global_batch=2)
    with pytest.raises(tf.errors.OpError) as error:
        for _ in ds.take(20):
            pass
    assert str(records.explain(error.value, files, 10)).startswith(
        f"bad input in file '{bad}', record 0 (0-based): ")


def test_skip_bad_records_and_count_them_exactly(tmp_path):
    """One file, read in order (no shuffle): good and bad records in a known pattern. Every
    good one is delivered, in order; the skipped count is the number of bad ones among the
    records up to the last one delivered."""
    pattern = "GBGBBGGB"
    jpeg = tf.io.encode_jpeg(np.full((24, 24, 3), 128, np.uint8)).numpy()
    with tf.io.TFRecordWriter(f"{tmp_path}/train-00000-of-00001") as w:
        for i, kind in enumerate(pattern):
            image = jpeg if kind == "G" else b"\xff\xd8not really a jpeg"
            w.write(records.encode_example(image, i + records.LABEL_OFFSET, 24, 24))
    stats = pipeline.InputStats()
    cfg = dataclasses.replace(_cfg(f"{tmp_path}/train-*", skip_bad=True), shuffle_buffer=1,
                              cycle_length=1)
    ds = pipeline.train_dataset(cfg, global_batch=1, stats=stats)
    labels = [int(b[1][0]) for b in ds.take(9)]
    good = [i for i, kind in enumerate(pattern) if kind == "G"]
    assert labels == (good * 3)[:9]
    repeated = pattern * 4
    assert stats.delivered >= 9  # the pipeline prefetches ahead of what was taken
    assert repeated[:stats.read].count("G") == stats.delivered
    assert stats.skipped == repeated[:stats.read].count("B") > 0


def test_truncated_record_file_names_the_file(tmp_path):
    write_records(tmp_path, num_files=1, per_file=3)
    path = records.list_files(f"{tmp_path}/validation-*")[0]
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-20])
    assert "validation-00000-of-00001" in records.find_bad_record([path], 10)


@pytest.mark.parametrize("pattern", ["/nonexistent/train-*", "{tmp}/none-*"])
def test_empty_or_missing_pattern_names_it(tmp_path, pattern):
    pattern = pattern.format(tmp=tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"file pattern '{pattern}' matches no files")):
        pipeline.train_dataset(_cfg(pattern), global_batch=2)


def test_fake_data():
    images, labels = next(iter(pipeline.fake_dataset(16, 10, global_batch=3)))
    assert images.shape == (3, 16, 16, 3) and images.dtype == tf.uint8
    assert labels.shape == (3,) and int(tf.reduce_max(labels)) < 10


def test_distribute_datasets_from_function(tmp_path):
    pattern, _ = write_records(tmp_path, "train", num_files=2, per_file=4)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.train_dataset(_cfg(pattern), global_batch=4, input_context=ctx))
    images, labels = next(iter(dist))
    assert images.shape == (4, 24, 24, 3)


def test_eval_crop_is_centered():
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:30, 20:40] = 255  # a bright centre square
    out = pipeline.eval_image(tf.io.encode_jpeg(img), 8).numpy()
    assert out.shape == (8, 8, 3)
    assert out[3:5, 3:5].mean() > 200 and out[0, 0].mean() < 60


def test_count_records_names_a_truncated_file_and_record(tmp_path):
    write_records(tmp_path, "validation", num_files=1, per_file=4)
    (path,) = records.list_files(f"{tmp_path}/validation-*")
    assert records.count_records([path]) == [4]
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:-5])  # the last record cut short
    with pytest.raises(records.InputError, match=rf"file '{re.escape(path)}', record 3 "
                                                 r"\(0-based\) cannot be read"):
        records.count_records([path])
