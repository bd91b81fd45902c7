"""Convert a folder of class sub-folders of JPEG/PNG images to the TFRecord layout.

    python -m tpu_convrnn.data.folder --input=photos/ --output=records/ --num_shards=16

``photos/<class name>/<image>`` -> ``records/train-00000-of-00016`` ... (or ``--split``), with
1-based labels in sorted class-name order, written to ``records/labels.json``
(``{"class name": 0-based label}``). Non-JPEG images are re-encoded as JPEG. Nothing is seen
half-written: every shard is written under a temporary name, and only when all of them are
complete are they renamed, ``labels.json`` last. An output folder that already holds shards of
the split is refused (``--overwrite`` replaces them: all of them, so no old shard stays beside
the new ones); an output that is a file or cannot be written is refused before any image is read.
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags

from tpu_convrnn import cli, files
from tpu_convrnn.data import records
from tpu_convrnn.progress import Progress

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def convert_folder(input_dir: str, output_dir: str, split: str = "train", num_shards: int = 1,
                   seed: int = 0, quiet: bool = False, overwrite: bool = False) -> dict:
    """Writes the shards and ``labels.json``; returns {"num_examples", "num_classes", "labels",
    "pattern"}. ``overwrite``: replace the shards of ``split`` already in ``output_dir``."""
    import numpy as np
    import tensorflow as tf
    if not os.path.isdir(input_dir):
        raise ValueError(f"--input {input_dir!r} is not a folder")
    if num_shards < 1:
        raise ValueError(f"--num_shards={num_shards}: expected at least 1")
    classes = sorted(d for d in os.listdir(input_dir)
                     if os.path.isdir(os.path.join(input_dir, d)))
    if not classes:
        raise ValueError(f"--input {input_dir!r} has no class sub-folders")
    items = [(os.path.join(input_dir, c, f), label) for label, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(input_dir, c)))
             if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not items:
        raise ValueError(f"--input {input_dir!r}: no {'/'.join(IMAGE_EXTENSIONS)} images")
    empty = [c for label, c in enumerate(classes) if not any(lab == label for _, lab in items)]
    if empty:
        raise ValueError(f"--input {input_dir!r}: class folder(s) {empty} hold no "
                         f"{'/'.join(IMAGE_EXTENSIONS)} images (a class needs examples)")
    if num_shards > len(items):
        raise ValueError(f"--num_shards={num_shards}: more shards than the {len(items)} "
                         "images (a shard would be empty)")
    files.writable_folder(output_dir, "--output")
    old = existing_shards(output_dir, split)
    if old and not overwrite:
        raise ValueError(f"--output {output_dir!r} already holds {len(old)} {split!r} shard(s) "
                         f"({os.path.basename(old[0])}, ...): pass --overwrite to replace "
                         "them, or choose another folder")
    order = np.random.default_rng(seed).permutation(len(items))
    paths = [os.path.join(output_dir, records.shard_name(split, shard, num_shards))
             for shard in range(num_shards)]
    written = []
    stream = open(os.devnull, "w") if quiet else None
    try:
        with Progress(len(items), f"converting {input_dir}", stream=stream) as bar:
            for shard, path in enumerate(paths):
                written.append(files.temp_name(path))
                _write_shard(written[-1], order[shard::num_shards], items, input_dir, bar)
    except BaseException:
        for tmp in written:  # no shard of a failed conversion is left behind
            files.remove(tmp)
        raise
    labels = {c: i for i, c in enumerate(classes)}
    for path in set(old) - set(paths):  # --overwrite: old shards of another count go
        tf.io.gfile.remove(path)
    for tmp, path in zip(written, paths):
        files.replace(tmp, path)
    files.write_atomic(os.path.join(output_dir, "labels.json"), json.dumps(labels, indent=1))
    return {"num_examples": len(items), "num_classes": len(classes), "labels": labels,
            "pattern": os.path.join(output_dir, f"{split}-*")}


def existing_shards(output_dir: str, split: str) -> list:
    """The finished shards of ``split`` in ``output_dir``."""
    import tensorflow as tf
    return sorted(os.path.join(output_dir, n) for n in tf.io.gfile.listdir(output_dir)
                  if records.is_shard_name(n, split))


def _write_shard(path, indices, items, input_dir, bar):
    import tensorflow as tf
    with tf.io.TFRecordWriter(path) as w:
        for i in indices:
            path_i, label = items[i]
            data = tf.io.read_file(path_i)
            try:
                img = tf.io.decode_image(data, channels=3, expand_animations=False)
            except tf.errors.OpError as e:
                raise ValueError(f"cannot decode image {path_i!r}: "
                                 f"{files.error_reason(e)}") from e
            jpeg = data.numpy() if tf.io.is_jpeg(data) else \
                tf.io.encode_jpeg(img, quality=95).numpy()
            key = os.path.relpath(path_i, input_dir)
            w.write(records.encode_example(jpeg, label + records.LABEL_OFFSET,
                                           int(img.shape[0]), int(img.shape[1]), key))
            bar.update()


FLAGS = flags.FlagValues()
flags.DEFINE_string("input", None, "folder of class sub-folders of images", flag_values=FLAGS)
flags.DEFINE_string("output", None, "output folder (local or gs://)", flag_values=FLAGS)
flags.DEFINE_string("split", "train", "shard name prefix (train, validation)",
                    flag_values=FLAGS)
flags.DEFINE_integer("num_shards", 1, "TFRecord files to write", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the example order", flag_values=FLAGS)
flags.DEFINE_boolean("overwrite", False, "replace the shards of --split already in --output",
                     flag_values=FLAGS)
flags.mark_flags_as_required(["input", "output"], flag_values=FLAGS)


def main(argv=None) -> int:
    return cli.main(_convert, FLAGS, __doc__, argv)


def _convert(a) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    try:
        info = convert_folder(a.input, a.output, a.split, a.num_shards, a.seed,
                              overwrite=a.overwrite)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['num_examples']} examples of {info['num_classes']} classes to "
          f"{info['pattern']} (labels: {os.path.join(a.output, 'labels.json')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
