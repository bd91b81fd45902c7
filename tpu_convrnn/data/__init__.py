"""Input pipelines (TensorFlow): the ImageNet TFRecord layout, TFDS, the embedded dataset,
folder conversion. See ``pipeline`` for the training/eval datasets."""
