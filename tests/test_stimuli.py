import numpy as np
import pytest
import tensorflow as tf

from tpu_convrnn.stimuli import load_stimuli


def _write_png(path, array):
    tf.io.write_file(str(path), tf.io.encode_png(array))


def test_folder_of_images(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        _write_png(tmp_path / f"{name}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    images, ids = load_stimuli(str(tmp_path), size=16)
    assert ids == ["a", "b"]
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_csv_of_paths(tmp_path):
    _write_png(tmp_path / "x.png", np.full((8, 8, 3), 255, np.uint8))
    (tmp_path / "s.csv").write_text("path,stimulus_id\nx.png,stim42\n")
    images, ids = load_stimuli(str(tmp_path / "s.csv"), size=8)
    assert ids == ["stim42"] and np.allclose(images, 1.0)


def test_npy_in_either_range(tmp_path):
    a = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "u.npy", a)
    np.save(tmp_path / "b.npy", a * 255)
    x, _ = load_stimuli(str(tmp_path / "u.npy"), size=8)
    y, _ = load_stimuli(str(tmp_path / "b.npy"), size=8)
    np.testing.assert_allclose(x, a, atol=1e-6)
    np.testing.assert_allclose(y, a, atol=1e-5)


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "do not exist"),
    (lambda p: np.save(p, np.full((1, 4, 4, 3), 300.0)), r"\[0, 1\] or \[0, 255\]"),
    (lambda p: np.save(p, np.zeros((4, 4, 3, 2))), r"expected images \[N, H, W, 3\]"),
])
def test_bad_stimuli(tmp_path, make, match):
    path = tmp_path / "s.npy"
    make(path)
    with pytest.raises(ValueError, match=match):
        load_stimuli(str(path), size=4)


def test_undecodable_image_names_the_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode stimulus image .*broken.jpg"):
        load_stimuli(str(tmp_path), size=4)
