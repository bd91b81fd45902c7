import tensorflow as tf
import tensorflow_datasets as tfds

from tpu_convrnn.data import tfds_source


def test_tfds_dataset_goes_through_the_same_preprocessing():
    with tfds.testing.mock_data(num_examples=6):
        ds, num_classes = tfds_source.tfds_records("mnist", "train")
        encoded, label = next(iter(ds))
        assert encoded.dtype == tf.string  # kept encoded: crop before decode
        assert num_classes == 10 and 0 <= int(label) < 10  # TFDS labels are 0-based
        images, labels = next(iter(tfds_source.tfds_eval_images("mnist", "test", 16, 3)))
    assert images.shape == (3, 16, 16, 3) and images.dtype == tf.uint8
    assert labels.shape == (3,)


def test_imagenet2012_with_a_manual_dir(tmp_path):
    with tfds.testing.mock_data(num_examples=2):
        ds, num_classes = tfds_source.tfds_records("imagenet2012", "validation",
                                                   manual_dir=str(tmp_path))
        assert num_classes == 1000
        assert len(list(ds)) == 2
