"""Per-layer, per-time-step features of a ConvRNN.

``extract_features(model, images, layers=None)`` returns {layer: array [T, N, ...]} holding each
layer's output after its post-memory ops at every step t = 0..T-1 (``"logits"``: the readout
node's output before decoding). Every layer runs from t = 0; before the image reaches layer
``conv_l`` (at t = l - 1) its output is input-independent but generally non-zero.

``original_window=True`` follows the original ``model_func`` instead (spec §1.5): ``conv_l`` is
returned for t = l..T-1 and the logits for t = N..T-1 (N = number of nodes), i.e. one step after
the first image-driven step; arrays then have T - l (or T - N) steps.
"""
from __future__ import annotations

import os
import re

import numpy as np
from keras import ops


def feature_layers(model) -> list[str]:
    """Names ``extract_features`` accepts: every non-readout node, then ``logits``."""
    return [n for n in model.node_names if n != model.readout_name] + ["logits"]


def _first_step(model, layer):
    if layer == "logits":
        return len(model.node_names)
    m = re.fullmatch(r"conv(\d+)", layer)
    return int(m.group(1)) if m else model.node_names.index(layer) + 1


def extract_features(model, images, layers=None, original_window: bool = False,
                     batch_size: int | None = None, progress=None) -> dict:
    """{layer: np.ndarray [T, N, ...]} for the chosen ``layers`` (default: all of
    ``feature_layers(model)``), computed in batches of ``batch_size`` images (default: all);
    ``progress.update(n)`` is called after each batch when given."""
    names = feature_layers(model)
    layers = list(names if layers is None else layers)
    unknown = [la for la in layers if la not in names]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; this model has {', '.join(names)}")
    images = np.asarray(images)
    n = images.shape[0]
    step = batch_size or n
    chunks = {la: [] for la in layers}
    for start in range(0, n, step):
        out = model.unroll(images[start:start + step], record=layers)
        for la in layers:
            chunks[la].append(np.stack([ops.convert_to_numpy(ops.cast(t, "float32"))
                                        for t in out[la]]))
        if progress is not None:
            progress.update(len(images[start:start + step]))
    result = {la: np.concatenate(chunks[la], axis=1) for la in layers}
    if original_window:
        result = {la: v[_first_step(model, la):] for la, v in result.items()}
    return result


def write_features(path: str, feats: dict, ids, step_ms: float = 10.0) -> list[str]:
    """Writes ``feats`` ({layer: [T, N, ...]}) to ``path`` (.npz) with ``stimulus_id`` and
    ``time_ms`` (start of each step); also ``<path>.nc`` when xarray is installed. Returns the
    files written."""
    ids = np.asarray([str(i) for i in ids])
    steps = max(v.shape[0] for v in feats.values())
    np.savez(path, stimulus_id=ids, time_ms=np.arange(steps) * step_ms, **feats)
    written = [path if path.endswith(".npz") else path + ".npz"]
    try:
        import xarray as xr
    except ImportError:
        return written
    data = {}
    for k, v in feats.items():
        dims = [f"{k}_time", "stimulus_id"] + [f"{k}_dim{i}" for i in range(v.ndim - 2)]
        data[k] = xr.DataArray(v, dims=dims, coords={
            f"{k}_time": (np.arange(steps - v.shape[0], steps) * step_ms),
            "stimulus_id": ids})
    nc = os.path.splitext(written[0])[0] + ".nc"
    xr.Dataset(data).to_netcdf(nc)
    return written + [nc]
