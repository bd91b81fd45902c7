"""Split-half reliability of neural responses, with the Spearman-Brown correction."""
from __future__ import annotations

import numpy as np


def pearson(a, b, axis: int = 0):
    """Pearson r between ``a`` and ``b`` along ``axis`` (every other index separately); NaN
    where either side is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis, keepdims=True)
    b = b - b.mean(axis, keepdims=True)
    denom = np.sqrt((a * a).sum(axis) * (b * b).sum(axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis) / np.where(denom > 0, denom, 1), np.nan)


def spearman_brown(r, factor: float = 2.0):
    """Reliability of a ``factor`` times longer measurement: k r / (1 + (k - 1) r)."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def split_half_reliability(half1, half2):
    """[P, N, B] halves -> [N, B]: Spearman-Brown corrected correlation over stimuli between
    the two halves' averages, i.e. the reliability of the full (both halves) average."""
    return spearman_brown(pearson(half1, half2, axis=0))
