"""Digit debris: every pixel is the background, the target or the topmost fragment (recomposed
independently from what render reports), the same bytes in another process, splits of their
own, and impossible settings named before anything is written."""
import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tpu_convrnn.data import debris, pipeline, records
from tpu_convrnn.data.sources import DataConfig

SMALL = debris.DebrisSettings(level="moderate", num_train=24, num_validation=12, num_test=12)


def _recompose(settings, piece):
    """The image from what render reports, pixel by pixel, without ``compose``: the topmost
    fragment whose glyph mask covers a pixel gives its value, else the target layer."""
    s = settings.image_size
    templates = debris.fragment_templates(settings.targets, s, "train")
    out = np.empty((s, s), np.uint8)
    owner = np.full((s, s), -1)
    for py in range(s):
        for px in range(s):
            out[py, px] = piece["target_layer"][py, px]
            for n, (t, cy, cx, k, y, x) in enumerate(piece["fragments"]):
                if y <= py < y + k and x <= px < x + k:
                    value, mask = templates[t]
                    if mask[cy + py - y, cx + px - x]:
                        out[py, px], owner[py, px] = value[cy + py - y, cx + px - x], n
    return out, owner


def test_every_pixel_is_background_target_or_the_topmost_fragment():
    images, labels, pieces = debris.render(SMALL, "train")
    lo, hi = SMALL.fragment_sizes
    for img, label, p in zip(images, labels, pieces):
        expected, owner = _recompose(SMALL, p)
        np.testing.assert_array_equal(img, expected)
        # the target layer: grey outside the glyph, the glyph's face/edge tones inside
        layer, mask = p["target_layer"], p["target_mask"]
        near = np.pad(mask, 1)
        near = np.logical_or.reduce([near[1 + dy:1 + dy + len(mask), 1 + dx:1 + dx + len(mask)]
                                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        assert (layer[~near] == debris.BACKGROUND).all()  # blends only at the glyph's border
        assert (layer[mask] != debris.BACKGROUND).mean() > 0.9
        assert p["target"][0] == label and 0 <= label < 10
        assert len(p["fragments"]) == SMALL.fragments == 30
        assert all(lo <= k <= hi for *_, k, _, _ in p["fragments"])
        assert (owner >= 0).any()
        # occlusion, not clutter: some of the target's pixels are replaced
    assert debris.occluded_fraction(images, pieces) > 0.2


def test_levels_hide_more_and_scale_with_the_canvas():
    light, moderate, heavy = (dataclasses.replace(SMALL, level=lv) for lv in debris.LEVELS)
    assert (light.fragments, moderate.fragments, heavy.fragments) == (10, 30, 50)
    big = dataclasses.replace(SMALL, image_size=64)
    assert big.fragments == 120 and big.fragment_sizes == (12, 18)
    hidden = [debris.occluded_fraction(*debris.render(s, "test")[::2]) for s in (light, heavy)]
    assert hidden[0] < hidden[1]


def test_splits_are_their_own_images_and_a_prefix_renders_the_same():
    train = debris.render(SMALL, "train")[0]
    val = debris.render(SMALL, "validation")[0]
    test = debris.render(SMALL, "test")[0]
    for a, b in ((train, val), (train, test), (val, test)):
        assert not any((x == y).all() for x in a for y in b)
    np.testing.assert_array_equal(debris.render(SMALL, "train", 5, 9)[0], train[5:9])


def test_same_settings_same_bytes_in_another_process_and_other_settings_another_cache(tmp_path):
    a = debris.write_debris(str(tmp_path / "a"), SMALL)
    subprocess.run([sys.executable, "-c", "from tpu_convrnn.data import debris; debris."
                    f"write_debris({str(tmp_path / 'b')!r}, debris.{SMALL!r})"], check=True)
    b = debris.write_debris(str(tmp_path / "b"), SMALL)  # reads what the other process wrote
    for pattern in ("train_pattern", "validation_pattern", "test_pattern"):
        fa, fb = records.list_files(a[pattern]), records.list_files(b[pattern])
        assert [open(x, "rb").read() for x in fa] == [open(x, "rb").read() for x in fb]
    assert sum(records.count_records(records.list_files(a["test_pattern"]))) == 12
    other = debris.write_debris(str(tmp_path / "a"), dataclasses.replace(SMALL, seed=1))
    assert os.path.dirname(other["train_pattern"]) != os.path.dirname(a["train_pattern"])
    info = os.path.join(os.path.dirname(a["train_pattern"]), "info.json")
    tampered = json.load(open(info))
    tampered["settings"]["level"] = "light"
    json.dump(tampered, open(info, "w"))
    with pytest.raises(ValueError, match="holds debris images of other settings"):
        debris.write_debris(str(tmp_path / "a"), SMALL)


@pytest.mark.parametrize("field, value, words", [
    ("level", "extreme", "data.debris_level = 'extreme': expected one of light, moderate, heavy"),
    ("targets", "letters", "data.debris_targets = 'letters': expected one of font, mnist"),
    ("image_size", 12, "data.debris_image_size = 12: the canvas must be"),
    ("num_train", 0, "data.debris_num_train = 0: each split needs at least one image"),
    ("eval_split", "train", "data.debris_eval_split = 'train'"),
])
def test_impossible_settings_name_the_binding(tmp_path, field, value, words):
    cfg = DataConfig(source="debris", cache_dir=str(tmp_path), **{f"debris_{field}": value})
    with pytest.raises(ValueError, match=words):
        cfg.resolved()
    assert not glob.glob(str(tmp_path / "*"))  # nothing written


def test_the_debris_source_reads_the_rendered_images_losslessly(tmp_path):
    kw = dict(source="debris", cache_dir=str(tmp_path), augment="none", debris_level="light",
              debris_num_train=24, debris_num_validation=12, debris_num_test=12)
    for split in ("validation", "test"):
        cfg = DataConfig(**kw, debris_eval_split=split).resolved()
        assert cfg.num_classes == 10 and cfg.eval_pattern.endswith(f"{split}-*")
        batch = next(iter(pipeline.eval_dataset(
            cfg.input_config(cfg.eval_pattern, 32, 0, "eval"), 12)))
        out, labels, _ = debris.render(cfg.debris_settings(), split)
        got = batch["image"].numpy()[..., 0]
        order = [int(np.argmax([(g == o).all() for o in out])) for g in got]
        np.testing.assert_array_equal(got, out[order])  # PNG: the very pixels
        np.testing.assert_array_equal(batch["label"].numpy(), labels[order])
    with pytest.raises(ValueError, match="data.augment = 'crop'"):
        DataConfig(source="debris", augment="crop").resolved()


def test_mnist_targets_use_held_out_digits_for_the_test_split():
    s = dataclasses.replace(SMALL, targets="mnist", level="light")
    images, labels, pieces = debris.render(s, "test")
    assert images.shape == (12, 32, 32) and set(labels) <= set(range(10))
    np.testing.assert_array_equal(images[0], _recompose_mnist(s, pieces[0]))


def _recompose_mnist(settings, piece):
    templates = debris.fragment_templates("mnist", settings.image_size, "test")
    out = piece["target_layer"].copy()
    for t, cy, cx, k, y, x in piece["fragments"]:
        value, mask = templates[t]
        for dy in range(k):
            for dx in range(k):
                if mask[cy + dy, cx + dx]:
                    out[y + dy, x + dx] = value[cy + dy, cx + dx]
    return out
