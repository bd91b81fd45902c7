"""SIGTERM (a preemption notice) as a request to save and stop, agreed across hosts.

``Preemption(strategy)``: inside ``guard()`` a SIGTERM sets ``requested`` instead of
killing the process, and the moment it arrived is kept (a thread reads the signal wakeup fd,
since Python runs the handler only when the running ``tf.function`` returns) for ``delay()``.
``agree()`` is a collective on several hosts (``distribute.any_host``): every host calls it at
the same point (after each loop, before each evaluation batch), and a signal that reached any
host makes all of them stop there together.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

from tpu_convrnn.training import distribute

log = logging.getLogger(__name__)


class Preemption:
    def __init__(self, strategy):
        self.requested = False
        self._any_host = distribute.any_host(strategy)
        self._arrived = None
        self._guarded = False

    @contextlib.contextmanager
    def guard(self):
        """While inside, SIGTERM sets ``requested`` (outside the main thread: no effect)."""
        if self._guarded or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd)
        threading.Thread(target=self._watch, args=(read_fd,), daemon=True).start()
        self._guarded = True
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGTERM, previous)
            os.close(write_fd)
            self._guarded = False

    def agree(self) -> bool:
        """Whether SIGTERM reached this host or any other (see the module docstring). The
        answer is the hosts' common one: a signal that lands here during the all-reduce counts
        at the next call, on every host alike."""
        local = self.requested
        anyone = self._any_host(local)
        if anyone and not local:
            self.requested = True
            self._arrived = self._arrived or time.monotonic()
            log.info("SIGTERM on another host: will save and stop with it")
        return anyone

    def delay(self) -> str:
        """Seconds since the signal arrived, for the exit message."""
        return f"{time.monotonic() - (self._arrived or time.monotonic()):.1f} s"

    def _on_sigterm(self, signum, frame):
        self.requested = True
        self._arrived = self._arrived or time.monotonic()
        log.info("SIGTERM: will save and stop after the current loop")

    def _watch(self, read_fd):
        try:
            while True:
                data = os.read(read_fd, 16)
                if not data:
                    return
                if signal.SIGTERM in data and self._arrived is None:
                    self._arrived = time.monotonic()
        finally:
            os.close(read_fd)
