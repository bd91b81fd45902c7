"""A dependency-free progress line for long loops (stderr, one line updated in place)."""
from __future__ import annotations

import sys
import time


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
