"""Image-classification datasets from tensorflow-datasets, through the same pipeline.

``data.source = 'tfds'`` with ``data.tfds_name`` (e.g. ``'imagenet2012'``, ``'cifar10'``) reads a
prepared TFDS dataset: training takes ``data.tfds_train_split`` through the same shuffle,
inception crop, batching and ``skip_bad`` as TFRecords (``pipeline.train_dataset``), evaluation
takes ``data.tfds_eval_split`` split evenly over the hosts (``tfds.even_splits``), every
example once (``pipeline.eval_dataset``). Images are read *encoded* (``SkipDecoding``) so
training keeps crop-before-decode; TFDS labels are 0-based already. ImageNet through TFDS needs
the manual download: put ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` into
``data.tfds_manual_dir``; the first run prepares the dataset under ``data.tfds_data_dir``
(hours for ImageNet; later runs read it). A dataset that is not prepared there is refused at
once (a run never starts a download by itself) unless ``data.tfds_download = True``.
"""
from __future__ import annotations

import tensorflow as tf

from tpu_convrnn.data import pipeline


def prepared_builder(name: str, data_dir=None, manual_dir=None, download: bool = False):
    """The TFDS builder of ``name``, its data prepared (read from ``data_dir`` if there).
    Prepares it only from ``manual_dir`` or when ``download`` is set; ``ValueError`` naming
    the binding if TFDS has no such dataset or it is not prepared in ``data_dir``."""
    import tensorflow_datasets as tfds
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"data.tfds_name = {name!r}: tensorflow-datasets has no such dataset "
                         "(see tfds.list_builders())") from None
    if not builder.is_prepared():
        if not (download or manual_dir):
            raise ValueError(
                f"data.tfds_name = {name!r} is not prepared in {builder.data_dir} "
                f"(data.tfds_data_dir = {data_dir!r}): prepare it there first (tfds build "
                f"{name} --data_dir=...), or set data.tfds_download = True to download and "
                "prepare it in this run")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
        builder.download_and_prepare(download_config=config)
    if "label" not in builder.info.features or "image" not in builder.info.features:
        raise ValueError(f"data.tfds_name = {name!r}: not an image-classification dataset "
                         f"(features {sorted(builder.info.features)}; needs 'image', 'label')")
    return builder


def num_classes(builder) -> int:
    return builder.info.features["label"].num_classes


def read(builder, split, shuffle_files=False, seed=0):
    """(encoded image, int32 label, tfds_id key) examples of a split of a prepared builder."""
    import tensorflow_datasets as tfds
    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True),
                            decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32), ex["tfds_id"]))


def _host_split(split, input_context):
    """(every host's even part of ``split``, this host's index)."""
    import tensorflow_datasets as tfds
    n_hosts, host = pipeline.context_fields(input_context)
    return (tfds.even_splits(split, n_hosts) if n_hosts > 1 else [split]), host


def train_examples(builder, split: str):
    """``(input_context, seed) -> dataset`` of this host's endless (encoded image, label, key)
    examples: an even part of ``split`` per host, files shuffled with ``seed``."""
    def fn(input_context, seed):
        parts, host = _host_split(split, input_context)
        return read(builder, parts[host], shuffle_files=True, seed=seed).repeat()
    return fn


def _count(ds) -> int:
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def eval_examples(builder, split: str):
    """``input_context -> (dataset, per-host counts)``: this host's even part of ``split`` in
    order, and how many examples each host's part holds (counted by reading, as the TFRecord
    files are)."""
    counted = {}

    def fn(input_context):
        parts, host = _host_split(split, input_context)
        if len(parts) not in counted:
            counted[len(parts)] = [_count(read(builder, p)) for p in parts]
        return read(builder, parts[host]), counted[len(parts)]
    return fn
