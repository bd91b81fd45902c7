"""Guarding a model dir while a run uses it: one run at a time, and no silent fresh start.

``with hold(model_dir, chief): ...`` (the chief of a multi-worker run; the others only read):

* **lock**: ``<model_dir>/LOCK`` names the holder (host, pid, start time) and is refreshed by
  ``touch()`` (each training loop). A second run on the same dir fails with an error naming
  the holder (on a local disk the check-and-write is exclusive, under ``flock`` on
  ``LOCK.guard``, so of two runs starting together one wins; ``live_holder`` says who holds a
  dir). A lock left by a killed run is taken over when its process is gone (same host)
  or its heartbeat is older than ``STALE_AFTER_S`` (another host, e.g. a preempted VM's). A
  LOCK that cannot be read or has another shape is taken over as garbage, saying so; a
  heartbeat more than ``CLOCK_SKEW_S`` in the future is suspect (another host's clock, or a
  hand-made file): the age of the LOCK file itself is used instead, and the message says so;
* **writable**: the dir is made and written to before anything else (a read-only or full
  disk is a one-line error naming the dir, not a traceback after the model is built);
* **checkpoint state**: if ``checkpoints/checkpoint`` (TensorFlow's list of checkpoints) is
  missing or unreadable while checkpoint files exist, it is rebuilt from those files instead
  of the run silently starting again from step 0 and overwriting them;
* **leftovers**: folders of saves cut off by a kill (``ckpt-N_temp``) are removed.

Local paths and ``gs://`` (``tf.io.gfile``); on object stores the lock is advisory (no atomic
create), which still catches the common mistake of starting the same command twice.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time

import tensorflow as tf

from tpu_convrnn import files
from tpu_convrnn.training.checkpoints import CHECKPOINT_SUBDIR

LOCK_FILE = "LOCK"
STALE_AFTER_S = 900  # a heartbeat older than this (another host) means the holder is gone
CLOCK_SKEW_S = 120  # a heartbeat further ahead than this of this host's clock is suspect
_HEARTBEAT_EVERY_S = 60

log = logging.getLogger(__name__)


class ModelDirInUse(RuntimeError):
    """Another live run holds the model dir."""


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
            "heartbeat": time.time()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    def __init__(self, model_dir):
        self.path = f"{model_dir}/{LOCK_FILE}"
        self.me, self.last = _me(), 0.0

    def acquire(self):
        """Takes the LOCK, or ModelDirInUse naming its live holder. On a local disk the
        check-and-write is exclusive (``flock`` on ``LOCK.guard``): of two runs starting
        together, or two taking over a dead holder's LOCK together, one wins."""
        if "://" in self.path:  # an object store: no locks; advisory (see the module doc)
            return self._acquire()
        import fcntl
        with open(f"{self.path}.guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            return self._acquire()

    def _acquire(self):
        holder = self._read()
        if holder is not None and self._live(holder):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
            raise ModelDirInUse(
                f"model dir {os.path.dirname(self.path)} is in use by pid {holder['pid']} on "
                f"host {holder['host']} since {since} ({self.path}); stop that run or use "
                f"another --model_dir (delete {LOCK_FILE} only if that process is gone)")
        if holder is not None:
            why = holder.get("garbage") or "no longer running"
            log.warning(f"taking over {self.path} from pid {holder.get('pid')} on host "
                     f"{holder.get('host')} ({why})")
        self._write()
        if self._read() != self.me:  # another run wrote in between
            raise ModelDirInUse(f"model dir {os.path.dirname(self.path)}: another run took "
                                f"{self.path} at the same moment")

    def _live(self, holder) -> bool:
        if "garbage" in holder:
            return False
        if holder["host"] == self.me["host"]:
            return holder["pid"] != self.me["pid"] and _alive(holder["pid"])
        age = time.time() - holder["heartbeat"]
        if age < -CLOCK_SKEW_S:
            file_age = time.time() - tf.io.gfile.stat(self.path).mtime_nsec / 1e9
            log.warning(f"{self.path}: the heartbeat of pid {holder['pid']} on host "
                     f"{holder['host']} is {-age:.0f} s in the future (that host's clock, or a "
                     f"hand-made file): judging it by the file's age, {file_age:.0f} s")
            age = file_age
        return age < STALE_AFTER_S

    def _read(self):
        """The holder's record; None without a LOCK; ``{"garbage": why, ...}`` for a LOCK
        that is torn, unreadable or of another shape (a killed write, a hand edit)."""
        if not tf.io.gfile.exists(self.path):
            return None
        try:
            with tf.io.gfile.GFile(self.path) as f:
                holder = json.load(f)
        except (ValueError, UnicodeDecodeError, tf.errors.OpError):
            return {"garbage": "an unreadable LOCK"}
        if not isinstance(holder, dict):
            return {"garbage": f"a LOCK that is not a JSON object: {str(holder)[:40]}"}
        try:
            fields = {"host": str(holder["host"]), "pid": int(holder["pid"]),
                      "started": float(holder["started"]),
                      "heartbeat": float(holder["heartbeat"])}
        except (KeyError, TypeError, ValueError) as e:
            return {**holder, "garbage": f"a LOCK with a missing or odd field ({e})"}
        if fields["pid"] <= 0:  # os.kill(0 or -1, 0) would ask about whole process groups
            return {**holder, "garbage": f"a LOCK with pid {fields['pid']}"}
        return {**holder, **fields}

    def _write(self):
        files.write_atomic(self.path, json.dumps(self.me))

    def touch(self):
        if time.time() - self.last >= _HEARTBEAT_EVERY_S:
            self.me["heartbeat"] = self.last = time.time()
            self._write()

    def release(self):
        if self._read() == self.me:
            tf.io.gfile.remove(self.path)


def live_holder(model_dir: str) -> dict | None:
    """The record (host, pid, started, heartbeat) of the live run holding ``model_dir``, or
    None when no run holds it (no LOCK, or one left by a run that is gone)."""
    lock = _Lock(model_dir)
    holder = lock._read()
    return holder if holder is not None and lock._live(holder) else None


def repair_checkpoint_state(ckpt_dir: str) -> list:
    """Removes ``ckpt-N_temp`` folders; rebuilds ``checkpoint`` from the ``ckpt-N.index``
    files if it is missing or unreadable. Returns the checkpoint prefixes found."""
    if not tf.io.gfile.isdir(ckpt_dir):
        return []
    names = tf.io.gfile.listdir(ckpt_dir)
    for n in names:
        if re.fullmatch(r"ckpt-\d+_temp.*", n.rstrip("/")):
            tf.io.gfile.rmtree(f"{ckpt_dir}/{n.rstrip('/')}")
            log.warning(f"removed {ckpt_dir}/{n.rstrip('/')} (a save cut off by a kill)")
    steps = sorted(int(m.group(1)) for m in (re.fullmatch(r"ckpt-(\d+)\.index", n)
                                             for n in names) if m)
    prefixes = [f"{ckpt_dir}/ckpt-{s}" for s in steps]
    if not prefixes:
        return []
    try:
        state = tf.train.get_checkpoint_state(ckpt_dir)
    except Exception:  # noqa: BLE001  (a torn or garbage text proto)
        state = None
    if state is None or not state.model_checkpoint_path:
        # (CheckpointManager recovers only paths that have timestamps)
        stamps = [tf.io.gfile.stat(f"{p}.index").mtime_nsec / 1e9 for p in prefixes]
        tf.compat.v1.train.update_checkpoint_state(
            ckpt_dir, prefixes[-1], prefixes, all_model_checkpoint_timestamps=stamps,
            last_preserved_timestamp=min(stamps) - 1)
        log.warning(f"{ckpt_dir}/checkpoint was missing or unreadable: rebuilt it from "
            f"{len(prefixes)} checkpoint file(s) (newest ckpt-{steps[-1]})")
    return prefixes


@contextlib.contextmanager
def hold(model_dir: str, chief: bool = True):
    """Holds ``model_dir`` for one run (see the module docstring); yields the lock (its
    ``touch()`` refreshes the heartbeat) or None on non-chief workers."""
    if not chief:
        yield None
        return
    files.writable_folder(model_dir, "--model_dir")
    lock = _Lock(model_dir)
    lock.acquire()
    try:
        repair_checkpoint_state(f"{model_dir}/{CHECKPOINT_SUBDIR}")
        yield lock
    finally:
        lock.release()
