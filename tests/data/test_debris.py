"""Digit debris: deterministic, held-out images from held-out digits only, whole targets, and
impossible settings or a cache of other settings refused."""
import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tpu_convrnn.data import debris, embedded, pipeline, records
from tpu_convrnn.data.sources import DataConfig

SMALL = debris.DebrisSettings(num_train=24, num_eval=12)


def test_images_are_the_maximum_of_their_pieces_and_held_out_ones_use_held_out_digits():
    images, _, _ = embedded._load_arrays()
    order = embedded.split_order(len(images))
    assert not set(order["train"]) & set(order["validation"])
    for split in ("train", "validation"):
        out, labels, pieces = debris.render(SMALL, split)
        digits = images[order[split]]  # the split's digits, as render indexes them
        for img, made in zip(out, pieces):
            expected = np.zeros_like(img)
            for d, cy, cx, size, y, x in made:  # recompose independently
                window = expected[y:y + size, x:x + size]
                window[...] = np.maximum(window, digits[d][cy:cy + size, cx:cx + size])
            np.testing.assert_array_equal(img, expected)
            assert len(made) == SMALL.fragments + 1
            assert all(0 <= d < len(digits) for d, *_ in made)  # only this split's digits
            target, _, _, size, y, x = made[0]
            room = SMALL.image_size - 28
            assert size == 28 and 0 <= y <= room and 0 <= x <= room
            # the whole target is in the image: no pixel of it lost
            assert (img[y:y + 28, x:x + 28] >= digits[target]).all()
            assert all(d != target for d, *_ in made[1:])


def test_same_settings_same_bytes_and_other_settings_another_cache(tmp_path):
    a = debris.write_debris(str(tmp_path / "a"), SMALL)
    # the second copy in another process: protobuf map order could differ between processes
    subprocess.run([sys.executable, "-c", "from tpu_convrnn.data import debris; debris."
                    f"write_debris({str(tmp_path / 'b')!r}, debris.{SMALL!r})"], check=True)
    b = debris.write_debris(str(tmp_path / "b"), SMALL)  # reads what the other process wrote
    for pattern in ("train_pattern", "eval_pattern"):
        fa, fb = records.list_files(a[pattern]), records.list_files(b[pattern])
        assert [open(x, "rb").read() for x in fa] == [open(x, "rb").read() for x in fb]
    assert sum(records.count_records(records.list_files(a["eval_pattern"]))) == 12
    other = debris.write_debris(str(tmp_path / "a"), dataclasses.replace(SMALL, fragments=3))
    assert os.path.dirname(other["train_pattern"]) != os.path.dirname(a["train_pattern"])
    info = os.path.join(os.path.dirname(a["train_pattern"]), "info.json")
    tampered = json.load(open(info))
    tampered["settings"]["fragments"] = 99
    json.dump(tampered, open(info, "w"))
    with pytest.raises(ValueError, match="holds debris images of other settings"):
        debris.write_debris(str(tmp_path / "a"), SMALL)


@pytest.mark.parametrize("field, value, words", [
    ("fragment_size", 30, "data.debris_fragment_size = 30: a fragment is a crop"),
    ("image_size", 20, "data.debris_image_size = 20: the canvas must hold a whole 28x28"),
    ("num_train", 0, "data.debris_num_train = 0: the task needs at least one image"),
    ("fragments", -1, "data.debris_fragments = -1"),
])
def test_impossible_settings_name_the_binding(tmp_path, field, value, words):
    cfg = DataConfig(source="debris", cache_dir=str(tmp_path), **{f"debris_{field}": value})
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        cfg.resolved()
    assert not glob.glob(str(tmp_path / "*"))  # nothing written


def test_the_debris_source_reads_whole_images(tmp_path):
    cfg = DataConfig(source="debris", cache_dir=str(tmp_path), augment="none",
                     debris_num_train=24, debris_num_eval=12).resolved()
    assert cfg.num_classes == 10 and cfg.train_pattern.endswith("train-*")
    batch = next(iter(pipeline.eval_dataset(cfg.input_config(cfg.eval_pattern, 40, 0, "eval"),
                                            12)))
    out, labels, _ = debris.render(SMALL, "validation")
    # without a central crop the decoded JPEG is the rendered image (up to JPEG loss)
    decoded = batch["image"].numpy()[..., 0].astype(int)
    assert np.abs(decoded - out.astype(int)).mean() < 8
    assert sorted(batch["label"].numpy()) == sorted(labels)
    with pytest.raises(ValueError, match="data.augment = 'crop'"):
        DataConfig(source="debris", augment="crop").resolved()
