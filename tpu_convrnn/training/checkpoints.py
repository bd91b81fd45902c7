"""Training checkpoints: model weights, optimizer state and step, kept in the model dir.

``TrainingCheckpoints(model, optimizer, directory)``:

* ``restore()`` loads the newest checkpoint; if it cannot be read (a save cut off by preemption,
  a corrupt file) it says so and tries the previous ones, newest first. Returns the path used
  (None: a fresh start).
* ``save(step)`` writes ``<directory>/ckpt-<step>`` and keeps the ``keep`` newest. A save that
  fails (a full or read-only disk) raises ``SaveFailed``, one line naming the directory, the
  reason and the newest checkpoint kept; what it had written is removed, older checkpoints stay.

Model weights are saved by their Keras paths (``conv4/ReciprocalGateCell/...``), so a checkpoint
does not depend on the order in which variables were created. On a multi-worker run every worker
must call ``save`` (it is a collective); workers other than the chief write to a scratch
subfolder that is deleted afterwards.
"""
from __future__ import annotations

import logging
import os

import tensorflow as tf

from tpu_convrnn import files

CHECKPOINT_SUBDIR = "checkpoints"

log = logging.getLogger(__name__)


class SaveFailed(RuntimeError):
    """A checkpoint could not be written; the older ones are untouched."""


def _weights_by_path(model) -> dict:
    return {v.path.replace("/", ".").replace(":", "_"): v for v in model.weights}


class TrainingCheckpoints:
    """Save and restore (model, optimizer) with fallback to older checkpoints."""

    def __init__(self, model, optimizer, directory: str, keep: int = 3, chief: bool = True,
                 worker_id: int = 0):
        self.directory = directory
        self.checkpoint = tf.train.Checkpoint(model=_weights_by_path(model), optimizer=optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep)
        self.scratch = None if chief else os.path.join(directory, f"tmp_worker{worker_id}")

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint; returns its path, or None if none exists."""
        candidates = list(reversed(self.manager.checkpoints))
        for i, path in enumerate(candidates):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001  (OpError, IndexError, ValueError, ...: any
                # unreadable checkpoint means: try the previous one)
                reason = _first_line(e)
                older = candidates[i + 1] if i + 1 < len(candidates) else None
                log.warning(f"checkpoint {path} could not be restored ({reason}); "
                         + (f"falling back to {older}" if older else "no older checkpoint"))
                continue
            return path
        if candidates:
            raise RuntimeError(
                f"none of the checkpoints in {self.directory} could be restored "
                f"({', '.join(candidates)}): if they were written with other model.* settings "
                f"(see config.gin beside them) rerun with those, or use another --model_dir; "
                f"if they are damaged, move them away to start afresh")
        return None

    def steps(self) -> list:
        """``[(step, path)]`` of the kept checkpoints, oldest first."""
        return [(int(p.rsplit("-", 1)[1]), p) for p in self.manager.checkpoints]

    def restore_path(self, path: str) -> bool:
        """Restores one checkpoint; False (and says why) if it cannot be read."""
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
            return True
        except Exception as e:  # noqa: BLE001  (as in restore)
            log.warning(f"checkpoint {path} could not be restored ({_first_line(e)}); skipped")
            return False

    def save(self, step: int) -> str:
        try:
            if self.scratch is None:
                return self.manager.save(checkpoint_number=int(step))
            scratch = tf.train.CheckpointManager(self.checkpoint, self.scratch, max_to_keep=1)
            path = scratch.save(checkpoint_number=int(step))
            tf.io.gfile.rmtree(self.scratch)
            return path
        except tf.errors.OpError as e:
            for leftover in tf.io.gfile.glob(f"{self.directory}/ckpt-{int(step)}[._]*"):
                (tf.io.gfile.rmtree if tf.io.gfile.isdir(leftover) else tf.io.gfile.remove)(
                    leftover)
            kept = self.latest
            raise SaveFailed(
                f"checkpoint step {int(step)} could not be written to {self.directory} "
                f"({files.error_reason(e)}); "
                + (f"the newest kept checkpoint is {kept}: free space (or fix the folder) "
                   "and restart with the same --model_dir to resume from it" if kept else
                   "no checkpoint was kept")) from None

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
