"""Loading stimuli for feature extraction: a folder of images, a CSV of paths, or .npy/.npz.

Every stimulus comes out as float32 RGB in [0, 1], resized (bilinear) to the model's size.
Arrays whose maximum exceeds 1 are taken to be in [0, 255]. This is I/O code and uses
TensorFlow for decoding and resizing.
"""
from __future__ import annotations

import csv
import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _to_unit_range(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: expected images [N, H, W, 3] (or grayscale [N, H, W]), got "
                         f"shape {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.min() < 0 or x.max() > 255:
        raise ValueError(f"{where}: values must lie in [0, 1] or [0, 255], got "
                         f"[{x.min():.3g}, {x.max():.3g}]")
    return x / 255.0 if x.max() > 1.0 else x


def load_stimuli(path: str, size: int = 224, key: str | None = None):
    """Returns (images float32 [N, size, size, 3] in [0, 1], stimulus ids list[str])."""
    import tensorflow as tf
    if not os.path.exists(path):
        raise ValueError(f"stimuli {path!r} do not exist")
    if path.endswith(".npy") or path.endswith(".npz"):
        data = np.load(path)
        if path.endswith(".npz"):
            keys = list(data.keys())
            key = key or ("images" if "images" in keys else keys[0])
            if key not in keys:
                raise ValueError(f"{path}: no array {key!r} (arrays: {', '.join(keys)})")
            ids = [str(s) for s in data["stimulus_id"]] if "stimulus_id" in keys else None
            data = data[key]
        else:
            ids = None
        images = _to_unit_range(data, path)
        ids = ids or [str(i) for i in range(len(images))]
    else:
        if os.path.isdir(path):
            files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
            paths = [os.path.join(path, f) for f in files]
            ids = [os.path.splitext(f)[0] for f in files]
        elif path.endswith(".csv"):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows or "path" not in rows[0]:
                raise ValueError(f"{path}: a stimulus CSV needs a 'path' column (and optionally "
                                 "'stimulus_id')")
            base = os.path.dirname(path)
            paths = [os.path.join(base, r["path"]) for r in rows]
            ids = [r.get("stimulus_id") or os.path.splitext(os.path.basename(r["path"]))[0]
                   for r in rows]
        else:
            raise ValueError(f"stimuli {path!r}: expected a folder of images, a .csv of paths, "
                             "a .npy or a .npz")
        if not paths:
            raise ValueError(f"stimuli {path!r}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        images = []
        for p in paths:
            try:
                img = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
            except Exception as e:  # InvalidArgumentError, NotFoundError
                raise ValueError(f"cannot decode stimulus image {p!r}: {e}") from e
            images.append(tf.image.resize(tf.cast(img, tf.float32) / 255.0, (size, size)).numpy())
        return np.stack(images), ids
    if images.shape[1:3] != (size, size):
        images = tf.image.resize(images, (size, size)).numpy()
    return np.clip(images, 0.0, 1.0).astype(np.float32), ids
