"""Files that are never seen half-written, and folders checked before work is spent on them.

Local paths go through ``os`` (so that importing this module, e.g. from the search, loads no
TensorFlow); URLs such as ``gs://bucket/run`` through ``tf.io.gfile``, imported when needed.

    with atomic_path("out/train-00000-of-00001") as tmp:
        write_shard(tmp)          # renamed to the final name only if this block succeeds
    write_atomic("out/info.json", json.dumps(info))
    writable_folder("runs/a", "--model_dir")   # ValueError naming the flag and the path
"""
from __future__ import annotations

import contextlib
import os
import socket


def _remote(path: str) -> bool:
    return "://" in str(path)


def _gfile():
    import tensorflow as tf
    return tf


def temp_name(path: str) -> str:
    """A temporary name beside ``path``, unique to this host and process."""
    return f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"


def replace(tmp: str, path: str) -> None:
    """Renames ``tmp`` to ``path``, replacing what is there (atomic on local disks)."""
    if _remote(path):
        _gfile().io.gfile.rename(tmp, path, overwrite=True)
    else:
        os.replace(tmp, path)


def remove(path: str) -> None:
    """Removes the file ``path`` if it is there (best effort: for temporary files)."""
    try:
        if _remote(path):
            _gfile().io.gfile.remove(path)
        else:
            os.remove(path)
    except Exception:  # noqa: BLE001  (missing already, or tf.errors.OpError)
        pass


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside ``path``; renames it to ``path`` when the block ends
    without an error, and removes it when the block raises (or is interrupted)."""
    tmp = temp_name(path)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    replace(tmp, path)


def write_atomic(path: str, data) -> None:
    """Writes ``data`` (str or bytes) to ``path`` through a temporary file and a rename: a
    reader sees the old file or the new one, never a torn one (several writers, or a kill)."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_path(path) as tmp:
        if _remote(path):
            with _gfile().io.gfile.GFile(tmp, mode) as f:
                f.write(data)
        else:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                f.write(data)


def writable_folder(path: str, what: str) -> None:
    """Makes the folder ``path`` if needed and checks that a file can be written in it.
    Raises ValueError naming ``what`` (e.g. ``--model_dir``) and the path when it is a file,
    on a read-only file system, full, or not permitted."""
    probe = f"{str(path).rstrip('/')}/.write_check.{socket.gethostname()}.{os.getpid()}"
    try:
        if _remote(path):
            tf = _gfile()
            if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
                raise ValueError(f"{what} {path!r} is a file, not a folder")
            tf.io.gfile.makedirs(path)
            with tf.io.gfile.GFile(probe, "w") as f:
                f.write("ok")
            tf.io.gfile.remove(probe)
            return
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{what} {path!r} is a file, not a folder")
        os.makedirs(path, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001  (OSError; tf.errors.OpError on gs:// paths)
        raise ValueError(f"{what} {path!r} is not writable: {error_reason(e)}") from None


def error_reason(e: Exception) -> str:
    """One line saying why a file operation failed: an OSError's strerror ('No space left on
    device'), else the first line of a TensorFlow error's message, else the text."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    lines = (getattr(e, "message", None) or str(e)).strip().splitlines()
    return lines[0] if lines else type(e).__name__
