"""Dependency-free progress output: a progress line for long loops (stderr, one line updated
in place) and ``format_hms``, the "H:MM:SS" of every ETA the project prints."""
from __future__ import annotations

import math
import sys
import time


def format_hms(seconds: float) -> str:
    """``seconds`` as "H:MM:SS" ("?" when not finite, e.g. an ETA before any progress)."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """``with Progress(total, "features") as p: ... p.update(n)`` prints count, rate and ETA."""

    def __init__(self, total: int, label: str, unit: str = "images", stream=None):
        self.total, self.label, self.unit = int(total), label, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.monotonic()

    def update(self, n: int = 1):
        self.done += n
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} {self.unit} {rate:.1f}/s ETA {eta:.0f}s")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.write("\n")
        self.stream.flush()
