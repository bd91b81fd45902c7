"""Test setup: quiet TF logging, small thread pools, the tests folder on sys.path, and
fixtures: the package's log messages, small tmpfs disks."""
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(__file__))


import subprocess  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def messages():
    """The list of the package's log messages (the ``tpu_convrnn`` logger's, INFO and up)
    during the test, whatever ``tpu_convrnn.console`` was told before."""
    said = []

    class Collect(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())
    logger, handler = logging.getLogger("tpu_convrnn"), Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield said
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def small_disk(tmp_path):
    """``mount(options="size=1m", name="disk") -> folder``: a fresh tmpfs mounted with
    ``options`` (e.g. ``"ro"``, ``"size=256k"``), unmounted after the test; ``remount(folder,
    options)`` changes its options (e.g. to ``"ro"``). Skips where mounting is refused (not
    root, or a container without the capability)."""
    mounted = []

    def mount(options="size=1m", name="disk"):
        folder = tmp_path / name
        folder.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {(proc.stderr or proc.stdout).strip()}")
        mounted.append(folder)
        return folder

    def remount(folder, options):
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    mount.remount = remount
    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
