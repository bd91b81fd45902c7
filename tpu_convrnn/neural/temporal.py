"""Which model step (or layer) stands for each neural time bin.

Model step t (one step per edge, ``step_ms`` = 10 ms) stands for the neural window
``[latency_ms + t * step_ms, latency_ms + (t + 1) * step_ms)``: with the default latency of
70 ms, step 0 is the 70-80 ms bin, and the default analysis window 70-260 ms covers steps 0-18 of
the 26-step "neural" presentation (image off at step 10). A bin maps to the step covering its
centre.

For feedforward models: ``uniform`` uses the same features (the layer at the last step) for
every bin; ``graded`` gives successive layers to successive groups of bins.
"""
from __future__ import annotations

import numpy as np

MAPPINGS = ("temporal", "uniform", "graded")


def select_bins(time_bin_start, time_bin_stop, window=(70.0, 260.0)):
    """Boolean mask of the bins that lie inside ``window`` (ms)."""
    start = np.asarray(time_bin_start, float)
    stop = np.asarray(time_bin_stop, float)
    mask = (start >= window[0]) & (stop <= window[1])
    if not mask.any():
        raise ValueError(f"no time bin lies inside the window {window[0]:g}-{window[1]:g} ms "
                         f"(bins span {start.min():g}-{stop.max():g} ms)")
    return mask


def bins_to_steps(time_bin_start, time_bin_stop, times: int, latency_ms: float = 70.0,
                  step_ms: float = 10.0):
    """Model step per bin (the step whose window holds the bin's centre)."""
    centre = (np.asarray(time_bin_start, float) + np.asarray(time_bin_stop, float)) / 2
    steps = np.floor((centre - latency_ms) / step_ms).astype(int)
    bad = (steps < 0) | (steps >= times)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise ValueError(f"time bin {time_bin_start[i]:g}-{time_bin_stop[i]:g} ms maps to model "
                         f"step {steps[i]}, outside the model's {times} steps (latency "
                         f"{latency_ms:g} ms, {step_ms:g} ms per step)")
    return steps


def graded_layers(layers, num_bins: int) -> list:
    """Layer per bin: the bins in ``len(layers)`` nearly equal consecutive groups."""
    groups = np.array_split(np.arange(num_bins), len(layers))
    return [layers[g] for g, idx in enumerate(groups) for _ in idx]
