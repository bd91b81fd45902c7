"""Image-classification datasets from tensorflow-datasets, through the same pipeline.

Images are read *encoded* (``SkipDecoding``) so training keeps crop-before-decode; TFDS labels
are 0-based already (``label_offset=0``). ImageNet through TFDS needs the manual download:
put ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` into ``manual_dir``.
"""
from __future__ import annotations

import tensorflow as tf

from tpu_convrnn.data import pipeline


def tfds_records(name: str, split: str, data_dir=None, manual_dir=None, shuffle_files=False,
                 input_context=None):
    """(encoded image, 0-based label) pairs of a TFDS dataset split, and its num_classes."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, data_dir=data_dir)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=0)
    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config,
                            decoders={"image": tfds.decode.SkipDecoding()})
    num_classes = builder.info.features["label"].num_classes
    return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32))), num_classes


def tfds_eval_images(name: str, split: str, image_size: int, batch_size: int, **kwargs):
    """Center-cropped uint8 batches (images, labels) of a TFDS split, in order."""
    ds, _ = tfds_records(name, split, **kwargs)
    return ds.map(lambda img, lab: (pipeline.eval_image(img, image_size), lab)).batch(batch_size)
