"""A worker's rung runner: one long-lived child process (``python -m tpu_convrnn.search.rung
--serve``) that imports TensorFlow once and runs rung after rung.

The worker sends a rung as a JSON line on the runner's stdin and reads the answer (the path of
the ``RungResult``) on a control pipe; the runner's output (stdout and stderr, TensorFlow's
own lines included) is copied as it is to the rung's log file, and lines that start with one
of ``echo`` are shown on the worker's console too (display only: nothing is decided from
text). The runner dies with its worker (``PR_SET_PDEATHSIG``).

Faults: a runner that exits or is killed during a rung (an out-of-memory kill, a segfault)
fails that rung with the reason (``killed by signal 9 (out of memory?)``) and is started again
for the next one, at most ``max_restarts`` times in a row without a rung that ended normally
(then ``RunnerBroken``). A runner that writes nothing for ``hang_timeout`` seconds while it
runs a rung (the clock starts when it takes the request, after its imports) is taken as hung:
it is killed and the rung failed with that reason, as for a death. It is recycled (a fresh
process) after ``recycle_rungs`` rungs or when its resident memory passed ``recycle_rss_mb``.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time

from tpu_convrnn.search.rung import RungResult

log = logging.getLogger(__name__)


class RunnerBroken(RuntimeError):
    """The runner died ``max_restarts`` times in a row."""


def _set_parent_death_signal():
    """In the child: die with SIGKILL if the worker dies (kill -9 leaves no orphan training)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def death_reason(code: int) -> str:
    """Why a runner that gave no answer ended, from its exit status."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ \
            else f"signal {-code}"
        return f"the rung runner was killed by {name}" + (
            " (out of memory?)" if code == -signal.SIGKILL else "")
    return f"the rung runner exited with code {code} before its answer"


class Runner:
    """See the module docstring. ``tpu``: passed to every rung."""

    def __init__(self, tpu=None, recycle_rungs: int = 50, recycle_rss_mb: float = 0,
                 max_restarts: int = 3, hang_timeout: float = 0):
        self.tpu = tpu
        self.hang_timeout = hang_timeout  # 0: none
        self.recycle_rungs, self.recycle_rss_mb = recycle_rungs, recycle_rss_mb
        self.max_restarts = max_restarts
        self.proc = None
        self.rungs = 0  # run by the current process
        self.deaths = 0  # in a row

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def signal(self, signum):
        """Passes ``signum`` on to the running runner (SIGTERM: its rung saves and stops)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def start(self):
        """Starts the runner now if none runs (else the next rung does): its TensorFlow
        import then overlaps the worker's own set-up instead of delaying the first rung."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.close()
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tpu_convrnn.search.rung", "--serve",
             f"--control_fd={write_fd}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(write_fd,), start_new_session=True,
            preexec_fn=_set_parent_death_signal, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        os.close(write_fd)
        self.control = os.fdopen(read_fd, "rb", buffering=0)
        self.rungs = 0
        log.info(f"rung runner started (pid {self.proc.pid})")

    def close(self):
        """Ends the runner (end of its stdin; killed if it does not exit within 30 s)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, self.control):
            f.close()

    def run(self, result_path: str, log_path: str, echo_prefix: str, echo=(), **request
            ) -> RungResult:
        """Runs one rung (``request``: ``rung.run_rung``'s arguments) and returns its result;
        the runner's output goes to ``log_path`` (appended)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.close()
        if self.proc is None:
            self.start()
        if os.path.exists(result_path):
            os.remove(result_path)
        line = json.dumps({**request, "tpu": self.tpu, "result": result_path,
                           "sent": time.time()}) + "\n"
        with open(log_path, "ab") as out:
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
            except OSError:
                pass  # it died meanwhile: no answer comes, the exit status says why
            answer, hung = self._pump(out, echo_prefix, echo)
        if answer is None:
            if hung:
                os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
            self.close()
            self.deaths += 1
            reason = (f"the rung runner wrote nothing for {self.hang_timeout:g} s (hung?) and "
                      "was killed") if hung else death_reason(code)
            if self.deaths > self.max_restarts:
                raise RunnerBroken(f"{reason}; it died {self.deaths} times in a row without "
                                   "finishing a rung (see the trial logs)")
            return RungResult("failed", error=reason)
        self.deaths = 0
        self.rungs += 1
        result = RungResult.read(json.loads(answer)["result"])
        if result.status == "preempted":
            self.close()  # it exits after a preempted rung
        elif self.rungs >= self.recycle_rungs or (
                self.recycle_rss_mb and result.rss_mb > self.recycle_rss_mb):
            log.info(f"rung runner (pid {self.pid}): recycled after {self.rungs} rungs at "
                     f"{result.rss_mb:.0f} MB")
            self.close()
        return result

    def _pump(self, out, echo_prefix, echo):
        """Copies the runner's output to ``out`` until its answer arrives, its control pipe
        closes (the runner ended) or it is silent for ``hang_timeout`` seconds after taking the
        request. Returns ``(answer or None, hung)``."""
        fd = self.proc.stdout.fileno()
        pending, answer, control_open, hung = b"", None, True, False
        heard = None  # when the runner last wrote, once it has taken the request
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ, "out")
            sel.register(self.control, selectors.EVENT_READ, "control")
            while answer is None and control_open:
                events = sel.select(timeout=1.0 if self.hang_timeout else None)
                if self.hang_timeout and heard is not None \
                        and time.monotonic() - heard > self.hang_timeout:
                    hung = True
                    break
                for key, _ in events:
                    if key.data == "control":
                        line = self.control.readline()
                        if not line:
                            control_open = False
                            sel.unregister(self.control)
                        elif "started" in json.loads(line):
                            heard = time.monotonic()
                        else:
                            answer = line.decode()
                    else:
                        if heard is not None:
                            heard = time.monotonic()
                        chunk = os.read(fd, 65536)
                        if chunk:
                            pending = self._copy(out, pending + chunk, echo_prefix, echo)
                        else:
                            sel.unregister(fd)
        # The runner's output is in the pipe before its answer (or its end): take all of it.
        os.set_blocking(fd, answer is None and not hung)
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending = self._copy(out, pending + chunk, echo_prefix, echo)
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(fd, True)
        if pending:
            self._copy(out, pending + b"\n", echo_prefix, echo)
        return answer, hung

    def _copy(self, out, data: bytes, echo_prefix, echo) -> bytes:
        """Writes the complete lines of ``data`` to ``out`` (echoing the chosen ones); returns
        the incomplete rest."""
        *lines, rest = data.split(b"\n")
        for raw in lines:
            out.write(raw + b"\n")
            text = raw.decode(errors="replace").rstrip().split("\r")[-1]
            if text.startswith(tuple(echo)):
                log.info(f"{echo_prefix} {text}")
        out.flush()
        return rest
