"""Time and peak memory of fitting one region over 20 time bins with 10 splits.

    python bench/neural_fit.py                       # 3,200 stimuli x 256 sites, 1,000 dims
    python bench/neural_fit.py --stimuli=400 --sites=32 --dims=200 --bins=4 --splits=2  # quick

Features stand for one layer after the CLI's default sparse random projection (--dims, e.g.
28x28x256 = 200,704 values per step projected to 1,000) over a 26-step neural presentation;
responses are a planted linear map of them plus noise. Prints the wall time of the fit, the
time per (bin, split) fit and the process's peak resident memory, before and after.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stimuli", type=int, default=3200)
    p.add_argument("--sites", type=int, default=256)
    p.add_argument("--dims", type=int, default=1000, help="feature dims per step")
    p.add_argument("--steps", type=int, default=26)
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--method", default="pls", choices=["pls", "ridge"])
    a = p.parse_args(argv)

    from tpu_convrnn.neural.assembly import from_trials
    from tpu_convrnn.neural.benchmark import compare
    from tpu_convrnn.neural.synthetic import planted_trials
    from tpu_convrnn.progress import Progress

    rng = np.random.default_rng(0)
    features = {"layer": rng.normal(size=(a.steps, a.stimuli, a.dims)).astype(np.float32)}
    starts = 70.0 + 10.0 * np.arange(a.bins)
    steps = np.arange(a.bins)
    trials, region = planted_trials(features, {"IT": "layer"}, steps, a.sites, repetitions=4,
                                    noise=1.0, rank=25)
    assembly = from_trials(trials, [f"s{i}" for i in range(a.stimuli)], region, starts,
                           starts + 10)
    del trials
    feat_gib = features["layer"].nbytes / 2 ** 30
    before = peak_rss_gib()
    print(f"{a.stimuli} stimuli x {a.sites} sites, {a.bins} bins x {a.splits} splits, "
          f"{a.method}; features {a.steps} steps x {a.dims} dims = {feat_gib:.2f} GiB; "
          f"peak RSS before the fit {before:.2f} GiB", flush=True)
    t0 = time.perf_counter()
    with Progress(a.bins * a.splits, "fits", unit="fits", stream=sys.stderr) as bar:
        ds = compare(features, assembly, layers={"IT": "layer"}, method=a.method,
                     num_splits=a.splits, window=(starts[0], starts[-1] + 10), progress=bar)
    dt = time.perf_counter() - t0
    print(f"fit: {dt:.1f} s ({dt / (a.bins * a.splits):.2f} s per bin x split); peak RSS "
          f"{peak_rss_gib():.2f} GiB; median r {float(ds['r'].mean('split').median()):.3f}, "
          f"noise-corrected {float(ds['r_corrected'].mean('split').median()):.3f}")


if __name__ == "__main__":
    main()
