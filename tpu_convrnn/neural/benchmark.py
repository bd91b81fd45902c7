"""A model against a neural assembly: features, time mapping, fits per region, results.

    feats = model_features(model, images, ["conv3", "conv5"], project=1000)
    ds = compare(feats, assembly, layers={"V4": "conv3", "IT": "conv5"}, model_name="rgc")
    write_results(ds, "results/rgc")        # .nc, .csv and a .png of predictivity over time

``compare`` returns an xarray Dataset with dims region x split x time_bin: ``r`` (median over
sites of the held-out Pearson r), ``r_corrected`` (r / sqrt(reliability)), ``ev_ceiled``
(r^2 / reliability); per region x time_bin the median ``reliability`` and the ``ceiling`` of r
(median sqrt(reliability)); coordinates ``time_bin_start``/``time_bin_stop`` (ms) and
``model_step``; attributes model, method, mapping and the layer of each region.
"""
from __future__ import annotations

import numpy as np

from tpu_convrnn import lazy
from tpu_convrnn.neural import fit, temporal
from tpu_convrnn.neural.plot import plot_predictivity

features = lazy("tpu_convrnn.features")  # (Keras: when a model's features are computed)

METRICS = ("r", "r_corrected", "ev_ceiled")


def _projector(num_features: int, dims: int, seed: int):
    from sklearn.random_projection import SparseRandomProjection
    return SparseRandomProjection(n_components=dims, random_state=seed).fit(
        np.zeros((1, num_features), np.float32))


def model_features(model, images, layers, batch_size: int = 16, project: int | None = None,
                   seed: int = 0, progress=None) -> dict:
    """{layer: float32 [T, stimuli, D]} over every step, computed ``batch_size`` stimuli at a
    time; ``project=k`` maps each layer's flattened features to k dims with a fixed sparse
    random projection (seeded) as they are computed, so memory is T x stimuli x k per layer."""
    projectors, out = {}, {layer: [] for layer in layers}
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        feats = features.extract_features(model, chunk, list(layers), batch_size=batch_size)
        for layer, f in feats.items():
            f = np.asarray(f, np.float32).reshape(f.shape[0], f.shape[1], -1)
            if project and f.shape[2] > project:
                proj = projectors.setdefault(layer, _projector(f.shape[2], project, seed))
                f = np.stack([proj.transform(ft) for ft in f]).astype(np.float32)
            out[layer].append(f)
        if progress is not None:
            progress.update(len(chunk))
    return {layer: np.concatenate(v, axis=1) for layer, v in out.items()}


def bin_feature_fns(features: dict, layer, steps, mapping: str, layers_for_graded=None):
    """``b -> [stimuli, D]`` for one region under ``mapping``."""
    if mapping == "temporal":
        f = features[layer]
        return lambda b: f[steps[b]]
    if mapping == "uniform":
        f = features[layer]
        return lambda b: f[-1]
    if mapping == "graded":
        per_bin = temporal.graded_layers(layers_for_graded, len(steps))
        return lambda b: features[per_bin[b]][-1]
    raise ValueError(f"mapping {mapping!r}: expected one of {', '.join(temporal.MAPPINGS)}")


def compare(features: dict, assembly, layers=None, candidate_layers=None,
            mapping: str = "temporal", method: str = "pls", num_splits: int = 10,
            window=(70.0, 260.0), latency_ms: float = 70.0, step_ms: float = 10.0,
            pca: int | None = None, seed: int = 0, model_name: str = "model", progress=None):
    """Fits every region of ``assembly`` (see the module docstring).

    ``features``: {layer: [T, stimuli, D]} in the assembly's stimulus order. ``layers``:
    {region: layer} (for ``graded``: {region: [layers...]}); regions not in it, or all regions
    when it is None, choose among ``candidate_layers`` (default: every layer) by inner CV.
    """
    import xarray as xr
    if mapping not in temporal.MAPPINGS:
        raise ValueError(f"mapping {mapping!r}: expected one of {', '.join(temporal.MAPPINGS)}")
    n_stim = {len(f[0]) if f.ndim == 3 else len(f) for f in features.values()}
    if n_stim != {len(assembly.stimulus_id)}:
        raise ValueError(f"features hold {sorted(n_stim)} stimuli but the assembly has "
                         f"{len(assembly.stimulus_id)}")
    mask = temporal.select_bins(assembly.time_bin_start, assembly.time_bin_stop, window)
    times = min(f.shape[0] for f in features.values())
    steps = temporal.bins_to_steps(assembly.time_bin_start[mask], assembly.time_bin_stop[mask],
                                   times, latency_ms, step_ms)
    layers = dict(layers or {})
    candidates = list(candidate_layers or features)
    for region, layer in layers.items():
        for name in ([layer] if isinstance(layer, str) else layer):
            if name not in features:
                raise ValueError(f"layer {name!r} for region {region!r} has no features (have: "
                                 f"{', '.join(features)})")
    unknown = set(layers) - set(assembly.regions)
    if unknown:
        raise ValueError(f"regions {sorted(unknown)} are not in the assembly (regions: "
                         f"{', '.join(assembly.regions)})")
    results, chosen = {}, {}
    for region in assembly.regions:
        sub = assembly.subset(region=region, bins=mask)
        if region in layers or mapping == "graded":
            layer = layers.get(region, candidates)
            fn = bin_feature_fns(features, layer, steps, mapping, layer if mapping == "graded"
                                 else None)
            results[region] = fit.fit_region(fn, sub, method, num_splits, seed=seed, pca=pca,
                                             progress=progress)
            chosen[region] = layer if isinstance(layer, str) else ",".join(layer)
        else:
            fns = {c: bin_feature_fns(features, c, steps, mapping) for c in candidates}
            results[region] = fit.fit_region_choosing_layer(fns, sub, method, num_splits,
                                                            seed=seed, pca=pca,
                                                            progress=progress)
            chosen[region] = ",".join(results[region]["layer"])
    regions = assembly.regions
    data = {m: (("region", "split", "time_bin"), np.stack([results[r][m] for r in regions]))
            for m in METRICS}
    data["reliability"] = (("region", "time_bin"), np.stack(
        [np.nanmedian(results[r]["reliability"], axis=0) for r in regions]))
    data["ceiling"] = (("region", "time_bin"), np.stack(
        [np.nanmedian(np.sqrt(np.clip(results[r]["reliability"], 0, None)), axis=0)
         for r in regions]))
    return xr.Dataset(data, coords={
        "region": regions, "split": np.arange(num_splits), "time_bin": np.arange(mask.sum()),
        "time_bin_start": ("time_bin", assembly.time_bin_start[mask]),
        "time_bin_stop": ("time_bin", assembly.time_bin_stop[mask]),
        "model_step": ("time_bin", steps if mapping == "temporal"
                       else np.full(len(steps), times - 1))},
        attrs={"model": model_name, "method": method, "mapping": mapping,
               "num_stimuli": len(assembly.stimulus_id),
               **{f"layer_{r}": chosen[r] for r in regions}})


def summary_table(ds):
    """Rows (region, time_bin_start, time_bin_stop, metric, mean, sem over splits)."""
    rows = []
    n = ds.sizes["split"]
    for region in ds["region"].values:
        for b in range(ds.sizes["time_bin"]):
            for m in METRICS:
                v = ds[m].sel(region=region).values[:, b]
                rows.append((str(region), float(ds["time_bin_start"][b]),
                             float(ds["time_bin_stop"][b]), m, float(np.nanmean(v)),
                             float(np.nanstd(v, ddof=1) / np.sqrt(n)) if n > 1 else 0.0))
    return rows


def write_results(ds, prefix: str, others=None) -> list:
    """Writes ``prefix``.nc, .csv and .png (with ``others``: more Datasets on the figure)."""
    import csv
    import os
    folder = os.path.dirname(prefix)
    if folder:
        os.makedirs(folder, exist_ok=True)
    ds.to_netcdf(prefix + ".nc")
    with open(prefix + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "region", "time_bin_start", "time_bin_stop", "metric", "mean",
                    "sem"])
        for row in summary_table(ds):
            w.writerow([ds.attrs["model"], *row])
    plot_predictivity([ds] + list(others or []), prefix + ".png")
    return [prefix + ext for ext in (".nc", ".csv", ".png")]
