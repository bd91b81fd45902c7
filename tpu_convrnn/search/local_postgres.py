"""A throwaway PostgreSQL server on this machine: for many workers on one box, and the tests.

    python -m tpu_convrnn.search.local_postgres --dir=/tmp/pg     # prints the URL, Ctrl-C stops

SQLite serialises writers (Optuna's FAQ advises against it for many workers); a local server
does not. Uses the installed PostgreSQL binaries (Debian: ``apt-get install postgresql-15``);
as root, the server runs as the ``postgres`` user. Listens on 127.0.0.1 only, trust auth.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from absl import flags

from tpu_convrnn import cli


def bin_dir() -> str:
    """The folder of ``initdb`` and ``pg_ctl``; FileNotFoundError saying how to install them."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                            "them, e.g. apt-get install postgresql-15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url`` -- a fresh cluster with database ``search``."""

    def __init__(self, directory: str | None = None, user: str = "search"):
        self.bin = bin_dir()
        self.owned = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="tpu_convrnn_pg_")
        self.user, self.port = user, _free_port()
        self.data = os.path.join(self.dir, "data")
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/search"

    def _run(self, *args):
        cmd = [os.path.join(self.bin, args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, check=True, capture_output=True, text=True)

    def start(self) -> str:
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8")
        self.serve()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "search")
        return self.url

    def serve(self):
        """Starts the server on its cluster (after ``start`` made it, or after ``halt``)."""
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                  "-w", "start")

    def halt(self):
        """Stops the server (every connection dropped, new ones refused), keeping its data:
        ``serve()`` starts it again (an outage, as a server restart makes one)."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def terminate_connections(self) -> int:
        """Kills every other connection to the database (a server-side drop); returns how many."""
        out = self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-tA",
                        "-d", "search", "-c", "SELECT count(pg_terminate_backend(pid)) FROM "
                        "pg_stat_activity WHERE datname = 'search' AND pid <> pg_backend_pid()")
        return int(out.stdout.strip() or 0)

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


FLAGS = flags.FlagValues()
flags.DEFINE_string("dir", None, "folder for the cluster (created)", flag_values=FLAGS)
flags.mark_flag_as_required("dir", flag_values=FLAGS)


def main(argv=None) -> int:
    return cli.main(_serve, FLAGS, __doc__, argv)


def _serve(args) -> int:
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)  # stop the server on SIGTERM too
    with LocalPostgres(args.dir) as pg:
        print(f"PostgreSQL running: --storage={pg.url}  (Ctrl-C stops it)", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
