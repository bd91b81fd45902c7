"""tf.data input pipelines for training and evaluation (TensorFlow; runs on the hosts).

Training (``train_dataset``), per host under ``strategy.distribute_datasets_from_function``:
file list -> shard by ``input_pipeline_id`` (records are sharded instead when there are fewer
files than hosts) -> seeded file shuffle -> repeat -> interleave -> seeded record shuffle ->
parse -> **crop before decode** (inception crop: area 0.08-1, aspect 3/4-4/3, via
``decode_and_crop_jpeg``) -> flip -> resize -> uint8 -> per-replica batches with
``drop_remainder`` -> a fixed prefetch of 2 batches (``autotune``: tf.data tunes the maps'
parallelism; False: one call per core and no tuning thread, see ``InputConfig``). Augmentation is stateless, seeded per
element, so the same seed gives the same images in the same order. Normalisation happens on the
accelerator, as the model's first step.

Evaluation (``eval_dataset``): center crop (0.875 = 224/256 of the shorter side), no
shuffling, and every example exactly once across hosts: each host reads its shard, then pads
with masked examples (``mask`` 0) up to the same number of steps on every host.

``fake_dataset`` yields random uint8 batches with no I/O, for measuring compute alone.

Bad input: a file pattern that matches nothing, and labels outside the declared range, fail with
the pattern or file named. A corrupt record or undecodable image surfaces as a TF error while
iterating; ``records.explain(error, files)`` (which a run calls) turns it into ``InputError``
naming the file and record. With ``skip_bad=True`` such records are skipped and counted (``InputStats``).
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from tpu_convrnn.data import records

CROP_FRACTION = 224 / 256  # center crop: 224 of 256, of the shorter side, at any size
PREFETCH_BATCHES = 2
AUGMENTATIONS = ("inception", "none")


@dataclasses.dataclass
class InputConfig:
    """Where the data is and how to read it."""
    file_pattern: str
    num_classes: int = 1000
    image_size: int = 224
    label_offset: int = records.LABEL_OFFSET
    shuffle_buffer: int = 10_000
    seed: int = 0
    cycle_length: int = 16
    skip_bad: bool = False
    augment: str = "inception"   # or "none": the whole image, resized (train and eval)
    # tf.data autotuning (its tuning thread sets the maps' parallelism). False: the maps run
    # one call per core, with no tuning thread. Deleting an autotuned iterator waits for that
    # thread's current sleep (up to seconds): nothing for a long run, much for short ones
    # that build pipelines again and again (search rungs: bench/RESULTS.md). Same data either
    # way (the maps are deterministic).
    autotune: bool = True


class InputStats:
    """What a training pipeline with ``skip_bad`` has read and delivered: records are numbered
    in pipeline order before parsing; ``read`` is one past the number of the last example
    delivered, ``delivered`` the examples that parsed and decoded, their difference the records
    skipped. Exact at any moment, because the pipeline keeps its order (deterministic maps)."""

    def __init__(self):
        self.last = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)

    @property
    def read(self) -> int:
        return int(self.last.numpy()) + 1

    @property
    def delivered(self) -> int:
        return int(self.count.numpy())

    @property
    def skipped(self) -> int:
        return self.read - self.delivered


# ------------------------------------------------------------------------------ image ops
def _decode_crop(jpeg, crop_window):
    """Decodes only the crop window: fused for JPEG, decode-then-crop for other formats."""
    def fused():
        return tf.io.decode_and_crop_jpeg(jpeg, crop_window, channels=3)

    def generic():
        img = tf.io.decode_image(jpeg, channels=3, expand_animations=False)
        return tf.image.crop_to_bounding_box(img, crop_window[0], crop_window[1],
                                             crop_window[2], crop_window[3])
    return tf.cond(tf.io.is_jpeg(jpeg), fused, generic)


def _image_shape(jpeg):
    def jpeg_shape():
        return tf.image.extract_jpeg_shape(jpeg)

    def other_shape():
        return tf.shape(tf.io.decode_image(jpeg, channels=3, expand_animations=False))
    return tf.cond(tf.io.is_jpeg(jpeg), jpeg_shape, other_shape)


def _resize_uint8(image, size):
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=False)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def whole_image(jpeg, size: int):
    """The whole image, resized -> uint8 [size, size, 3] (``augment="none"``)."""
    return _resize_uint8(tf.io.decode_image(jpeg, channels=3, expand_animations=False), size)


def train_image(jpeg, size: int, seed, augment: str = "inception"):
    """Inception crop (stateless, ``seed`` [2] int) + flip + resize -> uint8 [size, size, 3]
    (``augment="none"``: the whole image)."""
    if augment == "none":
        return whole_image(jpeg, size)
    shape = _image_shape(jpeg)
    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], crop[0], crop[1]])
    image = _decode_crop(jpeg, window)
    image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return _resize_uint8(image, size)


def eval_image(jpeg, size: int, augment: str = "inception"):
    """Center crop of 0.875 (224/256) of the shorter side, resized -> uint8 (``augment="none"``:
    the whole image)."""
    if augment == "none":
        return whole_image(jpeg, size)
    shape = _image_shape(jpeg)
    h, w = shape[0], shape[1]
    side = tf.cast(CROP_FRACTION * tf.cast(tf.minimum(h, w), tf.float32), tf.int32)
    window = tf.stack([(h - side + 1) // 2, (w - side + 1) // 2, side, side])
    return _resize_uint8(_decode_crop(jpeg, window), size)


# ------------------------------------------------------------------------------ datasets
def context_fields(input_context):
    """(number of input pipelines, this pipeline's index) of an InputContext (None: 1, 0)."""
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def _per_replica_batch(global_batch, input_context):
    if input_context is None:
        return global_batch
    return input_context.get_per_replica_batch_size(global_batch)


def _host_files(files, num_hosts, host):
    """(files of this host, whether records must be sharded instead)."""
    if num_hosts > 1 and len(files) >= num_hosts:
        return files[host::num_hosts], False
    return files, num_hosts > 1


def _file_records(cfg: InputConfig, input_context):
    """This host's endless (record, filename) stream of ``cfg.file_pattern``, files shuffled."""
    files = records.list_files(cfg.file_pattern)
    n_hosts, host = context_fields(input_context)
    files, shard_records = _host_files(files, n_hosts, host)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=cfg.seed, reshuffle_each_iteration=True).repeat()
    ds = records.records_with_filenames(ds, min(cfg.cycle_length, len(files)))
    return ds.shard(n_hosts, host) if shard_records else ds


def train_dataset(cfg: InputConfig, global_batch: int, input_context=None,
                  stats: InputStats | None = None, examples=None) -> tf.data.Dataset:
    """Endless (uint8 images [B, S, S, 3], int32 labels [B]) batches of this host's replicas.

    ``examples``: None reads the TFRecords of ``cfg.file_pattern``; else a function
    ``(input_context, seed) -> dataset`` of this host's endless (encoded image, int32 label,
    key) examples (a TFDS split, ``tfds_source.train_examples``), which then go through the
    same shuffle, crop, batching and ``skip_bad`` as records do."""
    if examples is None:
        ds = _file_records(cfg, input_context)

        def parse(element):
            record, filename = element
            return records.parse_example(record, filename, cfg.num_classes, cfg.label_offset)
    else:
        ds = examples(input_context, cfg.seed)

        def parse(element):
            return element
    ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed + 1, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=cfg.seed + 2).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).enumerate()

    def prepare(index, element_seed):
        element, seed = element_seed
        jpeg, label, _ = parse(element)
        return train_image(jpeg, cfg.image_size, seed, cfg.augment), label, index

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cfg.skip_bad:
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.map(lambda image, label, index: _count(stats, image, label, index))
    ds = ds.batch(_per_replica_batch(global_batch, input_context), drop_remainder=True)
    return _tuned(ds.prefetch(PREFETCH_BATCHES), cfg)


def _tuned(ds, cfg: InputConfig):
    """``ds`` with ``cfg.autotune`` applied (TF's default: on)."""
    if cfg.autotune:
        return ds
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _count(stats, image, label, index):
    if stats is not None:
        stats.last.assign(index)
        stats.count.assign_add(1)
    return image, label


def host_counts(file_counts, num_hosts: int = 1) -> list:
    """Examples each host reads when it takes ``files[host::num_hosts]`` (or records
    ``host::num_hosts`` when there are fewer files than hosts)."""
    if num_hosts > 1 and len(file_counts) >= num_hosts:
        return [sum(file_counts[h::num_hosts]) for h in range(num_hosts)]
    total = sum(file_counts)
    return [len(range(h, total, num_hosts)) for h in range(num_hosts)]


def eval_steps(file_counts, global_batch: int, num_hosts: int = 1, per_host=None) -> int:
    """Steps that cover every example once: hosts read as ``host_counts`` says, or
    ``per_host`` examples each when given."""
    per_host = host_counts(file_counts, num_hosts) if per_host is None else per_host
    host_batch = global_batch // num_hosts
    return max(math.ceil(c / host_batch) for c in per_host) if per_host else 0


def eval_dataset(cfg: InputConfig, global_batch: int, input_context=None,
                 file_counts=None, examples=None) -> tf.data.Dataset:
    """Finite batches of dicts ``image`` (uint8), ``label`` (int32), ``mask`` (1 real, 0 pad),
    ``key`` (string, '' for padding): every example exactly once across hosts, and the same
    number of batches on every host. ``file_counts``: records per file, if known (else the
    files are counted). ``examples``: None reads ``cfg.file_pattern``; else a function
    ``input_context -> (dataset, per-host counts)`` giving this host's (encoded image, int32
    label, key) examples and every host's number of them (``tfds_source.eval_examples``)."""
    n_hosts, host = context_fields(input_context)
    if examples is None:
        all_files = records.list_files(cfg.file_pattern)
        counts = list(file_counts) if file_counts is not None else \
            records.count_records(all_files)
        per_host = host_counts(counts, n_hosts)
        files, shard_records = _host_files(all_files, n_hosts, host)
        ds = records.records_with_filenames(tf.data.Dataset.from_tensor_slices(files),
                                            cycle_length=1)
        if shard_records:
            ds = ds.shard(n_hosts, host)

        def parse(record, filename):
            return records.parse_example(record, filename, cfg.num_classes, cfg.label_offset)
    else:
        ds, per_host = examples(input_context)

        def parse(jpeg, label, key):
            return jpeg, label, key
    steps = eval_steps(None, global_batch, n_hosts, per_host=per_host)

    def prepare(*element):
        jpeg, label, key = parse(*element)
        return {"image": eval_image(jpeg, cfg.image_size, cfg.augment), "label": label,
                "mask": tf.constant(1, tf.int32), "key": key}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cfg.skip_bad:  # bad records are dropped; padding takes their place (mask 0), and
        ds = ds.ignore_errors(log_warning=True)  # the evaluation counts them as skipped
    s = cfg.image_size
    pad = tf.data.Dataset.from_tensors({
        "image": tf.zeros((s, s, 3), tf.uint8), "label": tf.constant(0, tf.int32),
        "mask": tf.constant(0, tf.int32), "key": tf.constant("")}).repeat()
    host_examples = steps * (global_batch // n_hosts)
    ds = ds.concatenate(pad).take(host_examples)
    return _tuned(ds.batch(_per_replica_batch(global_batch, input_context),
                           drop_remainder=True).prefetch(PREFETCH_BATCHES), cfg)


def fake_dataset(image_size: int, num_classes: int, global_batch: int, input_context=None,
                 seed: int = 0) -> tf.data.Dataset:
    """Endless identical random uint8 batches (no I/O), for compute-only benchmarks."""
    b = _per_replica_batch(global_batch, input_context)
    g = tf.random.Generator.from_seed(seed)
    images = tf.cast(g.uniform((b, image_size, image_size, 3), 0, 256, tf.int32), tf.uint8)
    labels = g.uniform((b,), 0, num_classes, tf.int32)
    return tf.data.Dataset.from_tensors((images, labels)).repeat()
