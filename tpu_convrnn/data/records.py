"""The TFRecord layout of ``imagenet_to_gcs.py`` (the de-facto Cloud TPU ImageNet format).

Shards ``train-00000-of-01024`` ... and ``validation-00000-of-00128``; each record is a
``tf.train.Example`` with ``image/encoded`` (JPEG bytes), ``image/class/label`` (int64),
``image/height``, ``image/width``, ``image/format`` and, when written here, ``image/key``.

**Label convention.** Files store labels from 1 (``image/class/label`` in 1..1000 for ImageNet,
as imagenet_to_gcs writes them); everything in tpu_convrnn past the parser is 0-based
(0..num_classes-1), as TFDS is. The conversion happens once, in ``parse_example``
(``label_offset=1``). Writers in this package (embedded dataset, folder converter) follow the same
1-based file convention, so every dataset goes through one code path.

Paths may be local or ``gs://`` (``tf.io.gfile``).
"""
from __future__ import annotations

import tensorflow as tf

from tpu_convrnn.files import error_reason

LABEL_OFFSET = 1  # files: 1..num_classes; in memory: 0..num_classes-1


def shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}"


def is_shard_name(name: str, split: str) -> bool:
    """Whether the file name ``name`` is one that ``shard_name(split, ...)`` writes."""
    head, sep, tail = name.rpartition("-of-")
    return bool(sep and head.startswith(f"{split}-") and head[len(split) + 1:].isdigit()
            and tail.isdigit())


def list_files(pattern: str) -> list[str]:
    """Sorted files matching ``pattern`` (local or gs://; several patterns separated by commas,
    e.g. a split of the training shards); ValueError naming the pattern if one matches none."""
    files = set()
    for part in (p.strip() for p in pattern.split(",")):
        if not part:
            continue
        try:
            found = tf.io.gfile.glob(part)
        except tf.errors.OpError as e:
            raise ValueError(f"cannot list file pattern {part!r}: {error_reason(e)}") from e
        if not found:
            raise ValueError(f"file pattern {part!r} matches no files")
        files.update(found)
    if not files:
        raise ValueError(f"file pattern {pattern!r} matches no files")
    return sorted(files)


def encode_example(jpeg: bytes, label: int, height: int, width: int, key: str = "") -> bytes:
    """A serialized Example in the imagenet_to_gcs layout; ``label`` as stored (1-based)."""
    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
    feats = {"image/encoded": b(jpeg), "image/class/label": i(int(label)),
             "image/height": i(int(height)), "image/width": i(int(width)),
             "image/format": b(b"JPEG"), "image/key": b(key.encode())}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(
        deterministic=True)  # map fields in a fixed order: same example, same bytes


FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/key": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def parse_example(record, filename, num_classes: int, label_offset: int = LABEL_OFFSET):
    """(jpeg bytes, 0-based int32 label, key) of one record; a label outside
    [label_offset, label_offset + num_classes) fails with the file's name in the message."""
    parsed = tf.io.parse_single_example(record, FEATURES)
    label = tf.cast(parsed["image/class/label"], tf.int32) - label_offset
    ok = tf.logical_and(label >= 0, label < num_classes)
    check = tf.debugging.Assert(ok, [
        "label", label + label_offset, "outside the declared range", label_offset, "..",
        label_offset + num_classes - 1, "in file", filename], summarize=1)
    with tf.control_dependencies([check]):
        label = tf.identity(label)
    return parsed["image/encoded"], label, parsed["image/key"]


def records_with_filenames(files, cycle_length: int = 8, deterministic: bool = True):
    """Interleaved (record, filename) pairs from a dataset of file names."""
    return files.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20).map(lambda r: (r, f)),
        cycle_length=cycle_length, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic)


def count_records(files) -> list[int]:
    """Number of records in each file (reads the files, no decoding); ``InputError`` naming
    the file and record for a truncated or garbage file."""
    counts = []
    for f in files:
        try:  # counted inside TensorFlow (fast); record by record only to name a failure
            counts.append(int(tf.data.TFRecordDataset(f).reduce(0, lambda n, _: n + 1)))
        except tf.errors.OpError:
            n = 0
            try:
                for _ in tf.data.TFRecordDataset(f):
                    n += 1
            except tf.errors.OpError as e:
                raise InputError(f"file {f!r}, record {n} (0-based) cannot be read: "
                                 f"{error_reason(e)}") from e
            raise
    return counts


def _check_one(record, filename, num_classes, label_offset):
    jpeg, label, _ = parse_example(record, filename, num_classes, label_offset)
    return tf.shape(tf.io.decode_image(jpeg, channels=3, expand_animations=False))[0] + \
        0 * label


def check_first_records(files, num_classes: int, label_offset: int = LABEL_OFFSET):
    """Reads, parses and decodes the first record of every file (in parallel; seconds even
    for ImageNet's 1,152 shards): a file that is not a TFRecord, an undecodable image or a label
    out of range there is an ``InputError`` naming the file, before any model is built."""
    def first(f):
        return tf.data.TFRecordDataset(f).take(1).map(
            lambda r: _check_one(r, f, num_classes, label_offset))
    ds = tf.data.Dataset.from_tensor_slices(list(files)).interleave(
        first, cycle_length=16, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    try:
        for _ in ds:
            pass
    except tf.errors.OpError:
        for f in files:  # which one: one at a time
            try:
                for _ in first(tf.constant(f)):
                    pass
            except tf.errors.OpError as e:
                raise InputError(f"file {f!r}, record 0: {_reason(e)}") from e
        raise


def explain(error, files, num_classes: int, label_offset: int = LABEL_OFFSET):
    """An ``InputError`` naming the file and record in ``files`` that caused the TF ``error``
    (found by scanning the files: the error of a graph names neither), or None when the files
    read well (the error came from elsewhere)."""
    where = find_bad_record(files, num_classes, label_offset)
    if where is None:
        return None
    return InputError(f"bad input in {where}")


def _reason(e) -> str:
    """The informative line of a TF error: the label assertion's text, or the first line
    that is not TensorFlow's "Graph execution error:" header."""
    lines = [line.strip() for line in e.message.splitlines() if line.strip()]
    for line in lines:
        if "outside the declared range" in line:
            return line.split("assertion failed: ")[-1].replace("] [", " ").strip("[]")
    useful = [line for line in lines if line != "Graph execution error:"]
    return (useful or lines or [type(e).__name__])[0]


def find_bad_record(files, num_classes: int, label_offset: int = LABEL_OFFSET):
    """Scans ``files`` eagerly and returns a description of the first corrupt record,
    undecodable image or out-of-range label (``file '...', record N (0-based): why``), or
    None. Used to turn an opaque input error into one that names the file and record."""
    for f in files:
        position = 0  # 0-based index of the record being read
        try:
            for record in tf.data.TFRecordDataset(f):
                parsed = tf.io.parse_single_example(record, FEATURES)
                label = int(parsed["image/class/label"])
                if not label_offset <= label < label_offset + num_classes:
                    return (f"file {f!r}, record {position} (0-based): label {label} outside "
                            f"the declared range {label_offset} .. "
                            f"{label_offset + num_classes - 1}")
                tf.io.decode_image(parsed["image/encoded"], channels=3,
                                   expand_animations=False)
                position += 1
        except tf.errors.OpError as e:
            return f"file {f!r}, record {position} (0-based): {_reason(e)}"
    return None


class InputError(ValueError):
    """Bad input data, with the file (and record) named."""
