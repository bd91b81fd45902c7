"""Predictivity against time, one panel per region, several models on one figure."""
from __future__ import annotations

import numpy as np


def plot_predictivity(datasets, path: str, metric: str = "r"):
    """Median held-out r (mean +- s.e.m. over splits) per time bin; the ceiling (median
    sqrt(reliability)) dashed. For ``r_corrected``/``ev_ceiled`` the ceiling is 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    regions = sorted({str(r) for ds in datasets for r in ds["region"].values})
    fig, axes = plt.subplots(1, len(regions), figsize=(4.2 * len(regions), 3.6), dpi=100,
                             squeeze=False, sharey=True)
    for ax, region in zip(axes[0], regions):
        for i, ds in enumerate(datasets):
            if region not in ds["region"].values:
                continue
            d = ds.sel(region=region)
            t = (d["time_bin_start"].values + d["time_bin_stop"].values) / 2
            v = d[metric].values  # [split, bin]
            mean = np.nanmean(v, 0)
            sem = np.nanstd(v, 0, ddof=1) / np.sqrt(v.shape[0]) if v.shape[0] > 1 else 0 * mean
            layer = ds.attrs.get(f"layer_{region}", "")
            line, = ax.plot(t, mean, marker="o", markersize=3,
                            label=f"{ds.attrs.get('model', i)} ({layer})")
            ax.fill_between(t, mean - sem, mean + sem, color=line.get_color(), alpha=0.25)
            if i == 0:
                ceiling = d["ceiling"].values if metric == "r" else np.ones_like(t)
                ax.plot(t, ceiling, "k--", linewidth=1, label="ceiling")
        ax.set_title(region)
        ax.set_xlabel("time (ms)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel({"r": "median held-out r", "r_corrected": "noise-corrected r",
                           "ev_ceiled": "explained variance / ceiling"}.get(metric, metric))
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
