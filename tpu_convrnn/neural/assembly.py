"""Neural assemblies: responses over time to a set of stimuli, in Brain-Score's layout.

An ``Assembly`` holds trial-averaged responses [presentation, neuroid, time_bin] (one
presentation per stimulus), the two split-half averages used for reliability, and the
coordinates ``stimulus_id`` (and ``object_name`` when known), ``region`` per neuroid and
``time_bin_start``/``time_bin_stop`` in ms.

``load_assembly(path)`` reads

* netCDF (xarray): a DataArray with dims presentation x neuroid x time_bin, coordinates
  ``stimulus_id`` and ``repetition`` (on presentation; several presentations per stimulus, one
  per repetition), ``region`` (on neuroid), ``time_bin_start``/``time_bin_stop`` (on time_bin),
  optionally ``object_name``; or already averaged data plus ``half1``/``half2`` variables;
* .npz: ``trials`` [repetition, stimulus, neuroid, time_bin] or ``responses`` [stimulus, neuroid,
  time_bin] with ``half1``/``half2``; ``stimulus_id``, ``region``, ``time_bin_start``,
  ``time_bin_stop``, optionally ``object_name``.

Bad input (missing coordinates, mismatched counts, NaNs) raises ``ValueError`` naming the
coordinate, or the neuroids/bins/stimuli involved.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class Assembly:
    responses: np.ndarray        # [P, N, B] trial-averaged
    half1: np.ndarray            # [P, N, B] average of one half of the repetitions
    half2: np.ndarray            # [P, N, B] the other half
    stimulus_id: np.ndarray      # [P]
    region: np.ndarray           # [N]
    time_bin_start: np.ndarray   # [B] ms
    time_bin_stop: np.ndarray    # [B] ms
    object_name: np.ndarray | None = None  # [P]

    def __post_init__(self):
        self.stimulus_id = np.asarray(self.stimulus_id).astype(str)
        self.region = np.asarray(self.region).astype(str)
        self.time_bin_start = np.asarray(self.time_bin_start, dtype=float)
        self.time_bin_stop = np.asarray(self.time_bin_stop, dtype=float)
        if self.object_name is not None:
            self.object_name = np.asarray(self.object_name).astype(str)
        p, n, b = np.shape(self.responses)
        checks = {"stimulus_id": (len(self.stimulus_id), p, "presentations"),
                  "region": (len(self.region), n, "neuroids"),
                  "time_bin_start": (len(self.time_bin_start), b, "time bins"),
                  "time_bin_stop": (len(self.time_bin_stop), b, "time bins")}
        if self.object_name is not None:
            checks["object_name"] = (len(self.object_name), p, "presentations")
        for name, (got, want, what) in checks.items():
            if got != want:
                raise ValueError(f"coordinate {name!r} has {got} values but the responses have "
                                 f"{want} {what}")
        for name in ("half1", "half2"):
            if np.shape(getattr(self, name)) != (p, n, b):
                raise ValueError(f"{name} has shape {np.shape(getattr(self, name))}; expected "
                                 f"{(p, n, b)} like the responses")
        dup = _duplicates(self.stimulus_id)
        if dup:
            raise ValueError(f"stimulus_id repeats after averaging: {dup[:5]}")
        for name in ("responses", "half1", "half2"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                sites = np.unique(np.nonzero(bad)[1])
                bins = np.unique(np.nonzero(bad)[2])
                raise ValueError(f"{name} contain NaN/Inf at neuroids {sites[:10].tolist()} in "
                                 f"time bins {[self.bin_label(i) for i in bins[:5]]}")

    @property
    def regions(self) -> list:
        return sorted(set(self.region.tolist()))

    def bin_label(self, i) -> str:
        return f"{self.time_bin_start[i]:g}-{self.time_bin_stop[i]:g} ms"

    def subset(self, region=None, bins=None) -> "Assembly":
        sites = slice(None) if region is None else self.region == region
        bins = slice(None) if bins is None else bins
        return Assembly(self.responses[:, sites][:, :, bins], self.half1[:, sites][:, :, bins],
                        self.half2[:, sites][:, :, bins], self.stimulus_id,
                        self.region[sites], self.time_bin_start[bins], self.time_bin_stop[bins],
                        self.object_name)


def _duplicates(values):
    uniq, counts = np.unique(values, return_counts=True)
    return uniq[counts > 1].tolist()


def from_trials(trials, stimulus_id, region, time_bin_start, time_bin_stop,
                object_name=None) -> Assembly:
    """An assembly from single trials [repetition, stimulus, neuroid, time_bin]: the mean, and
    the means of the even and of the odd repetitions."""
    trials = np.asarray(trials, dtype=np.float64)
    if trials.ndim != 4:
        raise ValueError(f"trials: expected [repetition, stimulus, neuroid, time_bin], got shape "
                         f"{trials.shape}")
    if trials.shape[0] < 2:
        raise ValueError("trials: need at least 2 repetitions for split-half reliability")
    return Assembly(trials.mean(0), trials[0::2].mean(0), trials[1::2].mean(0), stimulus_id,
                    region, time_bin_start, time_bin_stop, object_name)


def load_assembly(path: str) -> Assembly:
    """Reads an assembly from .nc (xarray) or .npz (see the module docstring)."""
    if not os.path.exists(path):
        raise ValueError(f"assembly file {path!r} does not exist")
    if path.endswith(".npz"):
        return _from_npz(path)
    if path.endswith((".nc", ".netcdf", ".h5")):
        return _from_netcdf(path)
    raise ValueError(f"assembly {path!r}: expected a .nc (netCDF) or .npz file")


def _require(keys, have, where):
    missing = [k for k in keys if k not in have]
    if missing:
        raise ValueError(f"{where}: missing coordinate(s) {missing} (have: {sorted(have)})")


def _from_npz(path):
    with np.load(path, allow_pickle=False) as d:
        have = set(d.files)
        _require(["stimulus_id", "region", "time_bin_start", "time_bin_stop"], have, path)
        coords = dict(stimulus_id=d["stimulus_id"], region=d["region"],
                      time_bin_start=d["time_bin_start"], time_bin_stop=d["time_bin_stop"],
                      object_name=d["object_name"] if "object_name" in have else None)
        if "trials" in have:
            return from_trials(d["trials"], **coords)
        _require(["responses", "half1", "half2"], have, f"{path} (no 'trials')")
        return Assembly(d["responses"], d["half1"], d["half2"], **coords)


def _from_netcdf(path):
    import xarray as xr
    ds = xr.open_dataset(path)
    names = list(ds.data_vars)
    if not names:
        raise ValueError(f"{path}: no data variable")
    da = ds[names[0]]
    if set(da.dims) != {"presentation", "neuroid", "time_bin"}:
        raise ValueError(f"{path}: variable {names[0]!r} has dims {da.dims}; expected "
                         "presentation x neuroid x time_bin")
    da = da.transpose("presentation", "neuroid", "time_bin")
    _require(["stimulus_id", "region", "time_bin_start", "time_bin_stop"], set(da.coords), path)
    coords = dict(region=da["region"].values, time_bin_start=da["time_bin_start"].values,
                  time_bin_stop=da["time_bin_stop"].values)
    ids = da["stimulus_id"].values.astype(str)
    objects = da["object_name"].values.astype(str) if "object_name" in da.coords else None
    if "half1" in ds and "half2" in ds:
        return Assembly(da.values, ds["half1"].transpose(*da.dims).values,
                        ds["half2"].transpose(*da.dims).values, ids, object_name=objects,
                        **coords)
    _require(["repetition"], set(da.coords), f"{path} (no half1/half2 variables)")
    order = sorted(set(ids.tolist()))
    reps = da["repetition"].values
    trials = []
    for rep in sorted(set(reps.tolist())):
        sel = reps == rep
        by_id = dict(zip(ids[sel], np.nonzero(sel)[0]))
        missing = [s for s in order if s not in by_id]
        if missing:
            raise ValueError(f"{path}: repetition {rep} lacks stimulus_id {missing[:5]}")
        trials.append(da.values[[by_id[s] for s in order]])
    obj = None
    if objects is not None:
        first = {s: o for s, o in zip(ids, objects)}
        obj = np.array([first[s] for s in order])
    return from_trials(np.stack(trials), np.array(order), object_name=obj, **coords)
