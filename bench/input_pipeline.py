"""Training-input throughput per core: the project's pipeline vs decode-then-crop.

    python bench/input_pipeline.py [--images 256] [--batch 32] [--threads 1] [--size 224]

Writes synthetic ImageNet-sized JPEGs (500x375, smooth colour noise, quality 90) into the
TFRecord layout, then times, in one process and on the same files:

* pipeline: ``tpu_convrnn.data.pipeline.train_dataset`` (inception crop *before* decode via
  ``decode_and_crop_jpeg``, flip, resize, uint8, batching);
* baseline: the same steps with a full ``decode_jpeg`` first, then the crop.

tf.data runs on ``--threads`` threads (default 1, so the figures are per core). Prints
images/s for both and their ratio.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tpu_convrnn.data import pipeline, records  # noqa: E402


def write_synthetic(folder, n, width=500, height=375, files=4, seed=0):
    rng = np.random.default_rng(seed)
    for f in range(files):
        with tf.io.TFRecordWriter(os.path.join(folder, records.shard_name("train", f, files))) as w:
            for _ in range(n // files):
                coarse = rng.uniform(0, 255, (height // 25, width // 25, 3)).astype(np.float32)
                img = tf.image.resize(coarse, (height, width)).numpy()
                img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
                w.write(records.encode_example(tf.io.encode_jpeg(img, quality=90).numpy(),
                                               int(rng.integers(1, 1001)), height, width))
    return os.path.join(folder, "train-*")


def baseline_dataset(cfg, batch):
    """Decode the whole JPEG, then the same inception crop, flip and resize."""
    files = tf.data.Dataset.from_tensor_slices(records.list_files(cfg.file_pattern)).repeat()
    ds = records.records_with_filenames(files, 4)
    seeds = tf.data.Dataset.random(seed=1).batch(2)

    def parse(rf, seed):
        jpeg, label, _ = records.parse_example(rf[0], rf[1], cfg.num_classes)
        image = tf.io.decode_jpeg(jpeg, channels=3)
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
            min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
            max_attempts=10, use_image_if_no_bounding_boxes=True)
        image = tf.slice(image, begin, size)
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
        return pipeline._resize_uint8(image, cfg.image_size), label
    ds = tf.data.Dataset.zip((ds, seeds)).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(2)


def with_threads(ds, threads):
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = threads
    opts.threading.max_intra_op_parallelism = 1
    return ds.with_options(opts)


def images_per_second(ds, batch, batches, repeats=3):
    it = iter(ds)
    for _ in range(3):  # warm-up
        next(it)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batch * batches / (time.perf_counter() - start))
    return float(np.median(rates))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256, help="synthetic JPEGs to write")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="batches per timed repeat")
    p.add_argument("--threads", type=int, default=1, help="tf.data threads (1 = per core)")
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        pattern = write_synthetic(d, a.images)
        cfg = pipeline.InputConfig(pattern, image_size=a.size, shuffle_buffer=64)
        ours = images_per_second(with_threads(pipeline.train_dataset(cfg, a.batch), a.threads),
                                 a.batch, a.batches)
        base = images_per_second(with_threads(baseline_dataset(cfg, a.batch), a.threads),
                                 a.batch, a.batches)
    print(f"tensorflow {tf.__version__}, {a.threads} tf.data thread(s), {a.size} px, "
          f"batch {a.batch}, 500x375 JPEGs")
    print(f"pipeline (crop before decode): {ours:8.1f} images/s per {a.threads} core(s)")
    print(f"baseline (decode, then crop):  {base:8.1f} images/s per {a.threads} core(s)")
    print(f"ratio pipeline / baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
