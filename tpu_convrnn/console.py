"""The package's messages: Python ``logging``, one logger per module (``logging.getLogger(
__name__)``), all under the ``tpu_convrnn`` logger. Library code only logs; where the lines go
is decided by the program that runs it:

* the entry points (``python -m tpu_convrnn.main``, the search's workers and rung runners,
  ``neural``, ``convert``) call ``to_console()``: the package's INFO lines and up, printed as
  plain lines on stdout as they are written (a search worker adds its ``[w0] `` prefix);
* from Python, call ``tpu_convrnn.console.to_console()`` to see the same lines, or configure
  ``logging`` as for any library (absl's handler, e.g., shows them in its own format).

Messages are told apart by their logger, not their text, e.g. to keep a run's progress lines
but not the model dir's notices::

    logging.getLogger("tpu_convrnn.training.model_dir").setLevel(logging.WARNING)
"""
from __future__ import annotations

import logging
import sys

PACKAGE = "tpu_convrnn"


class _Lines(logging.Handler):
    """Each record as one plain line (``prefix`` + message) on the current ``sys.stdout``,
    flushed (looked up at each record, so that a redirected stdout is followed)."""

    def __init__(self, prefix: str = ""):
        super().__init__()
        self.prefix = prefix

    def emit(self, record):
        try:
            stream = sys.stdout
            stream.write(f"{self.prefix}{record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001  (logging's convention: report, never raise)
            self.handleError(record)


def to_console(prefix: str = "", level: int = logging.INFO) -> logging.Handler:
    """Prints the package's messages of ``level`` and up as plain lines on stdout, each
    after ``prefix``; replaces the handler an earlier call installed. The package's records
    stop there (``propagate`` off): a handler on the root logger, such as absl's, would print
    every line a second time."""
    logger = logging.getLogger(PACKAGE)
    for handler in [h for h in logger.handlers if isinstance(h, _Lines)]:
        logger.removeHandler(handler)
    handler = _Lines(prefix)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
