"""Running a snippet under Keras' JAX backend on CPU, in a subprocess (the backend is fixed when
Keras is imported, and the tests' own process runs TensorFlow)."""
import importlib.util
import os
import subprocess
import sys

import pytest

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed")


def run_under_jax(script: str, timeout: int = 600) -> str:
    """Runs ``script`` with ``KERAS_BACKEND=jax`` on CPU; returns its stdout, fails the test
    with the end of its stderr if it exits non-zero."""
    return run_command_under_jax([sys.executable, "-c", script], timeout=timeout)


def run_command_under_jax(argv, timeout: int = 600, cwd=None) -> str:
    """``run_under_jax`` for a command line (e.g. a benchmark script)."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
