import numpy as np
import pytest

from small_graphs import S, randomize, small_graph
from tpu_convrnn import extract_features
from tpu_convrnn.features import feature_layers


@pytest.fixture(scope="module")
def model_and_images():
    model = small_graph(times=6, image_off=4)
    randomize(model, seed=7)
    images = np.random.default_rng(8).uniform(0, 1, (5, S, S, 3)).astype("float32")
    return model, images


def test_every_layer_every_step(model_and_images):
    model, images = model_and_images
    feats = extract_features(model, images)
    assert list(feats) == feature_layers(model) == ["conv1", "conv2", "conv3", "logits"]
    assert feats["conv1"].shape == (6, 5, 4, 4, 4)
    assert feats["conv3"].shape == (6, 5, 2, 2, 5)
    assert feats["logits"].shape == (6, 5, 7)
    np.testing.assert_allclose(feats["logits"][-1], np.asarray(model(images)), rtol=1e-5,
                               atol=1e-6)


def test_batching_gives_the_same_features(model_and_images):
    model, images = model_and_images
    whole = extract_features(model, images, ["conv2", "logits"])
    parts = extract_features(model, images, ["conv2", "logits"], batch_size=2)
    for k in whole:  # equal up to float32 round-off (kernels differ between batch sizes)
        assert np.max(np.abs(parts[k] - whole[k])) <= 1e-5 * np.max(np.abs(whole[k]))


def test_original_window_starts_one_step_after_arrival(model_and_images):
    model, images = model_and_images
    full = extract_features(model, images)
    orig = extract_features(model, images, original_window=True)
    for layer, first in (("conv1", 1), ("conv2", 2), ("conv3", 3), ("logits", 4)):
        np.testing.assert_array_equal(orig[layer], full[layer][first:])


def test_unknown_layer(model_and_images):
    model, images = model_and_images
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['conv9'\]"):
        extract_features(model, images, ["conv9"])
