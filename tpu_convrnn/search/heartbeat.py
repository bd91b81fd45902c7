"""The heartbeat of a worker's running trial, kept through a database outage.

Optuna's own heartbeat thread (``Study.optimize``) ends at the first storage error, so a short
outage left a live trial without heartbeats for good, and the next worker failed it as stale
while it still trained. This one beats every ``interval`` seconds in a daemon thread; a beat
that fails (the server restarting, a dropped connection) is retried at the next interval, said
once, and the recovery said with the outage's length. An outage shorter than the study's grace
period fails no live trial.
"""
from __future__ import annotations

import logging
import threading
import time

from tpu_convrnn.files import error_reason

log = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(storage, trial_id, interval): ...`` (``storage``: an Optuna
    ``RDBStorage``; a storage without heartbeats: nothing is done)."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = None
        self.down_since = None  # while beats fail: when the first one failed

    def beat(self) -> bool:
        """One beat; False (said once per outage) if the storage cannot be reached."""
        try:
            self.storage.record_heartbeat(self.trial_id)
        except Exception as e:  # noqa: BLE001  (sqlalchemy OperationalError, driver errors)
            if self.down_since is None:
                self.down_since = time.monotonic()
                cause = e.__cause__ or e  # (Optuna wraps the driver's error in its own)
                log.warning(f"heartbeat: the study storage cannot be reached ("
                         f"{type(cause).__name__}: {error_reason(cause)[:160]}); retrying "
                         f"every {self.interval:g} s")
            return False
        if self.down_since is not None:
            log.info(f"heartbeat: the study storage answers again after "
                     f"{time.monotonic() - self.down_since:.0f} s")
            self.down_since = None
        return True

    def _run(self):
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self):
        if not hasattr(self.storage, "record_heartbeat") or \
                not self.storage.get_heartbeat_interval():
            return self
        self.beat()
        self._thread = threading.Thread(target=self._run, name="trial-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False
