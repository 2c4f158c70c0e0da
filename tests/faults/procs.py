"""Real processes for the fault tests: `manage.py db_worker` on the test database, a private
PostgreSQL cluster that a test may restart, and a second connection that holds a lock or watches
the others through pg_stat_activity.

The tests need PostgreSQL: they run workers in other processes against the test database while
the test itself holds row locks, and SQLite has neither row locks nor pg_stat_activity.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[2]

# Not a missing requirement (tests/requirements.py): CI runs the suite once on SQLite and once on
# PostgreSQL, and these tests belong to the PostgreSQL run only.
requires_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="fault tests run worker processes against the test database and hold row locks: "
    "set DATABASE_URL to PostgreSQL (CI runs them on its PostgreSQL 15 cluster)",
)


def database_url(name: str | None = None) -> str:
    """The URL of the database this test runs on (pytest-django's test_… database), for other processes."""
    s = connection.settings_dict
    user = urllib.parse.quote(s["USER"] or "")
    password = f":{urllib.parse.quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name or s['NAME']}"


def conninfo(url: str | None = None) -> str:
    return (url or database_url()).replace("postgres://", "postgresql://", 1)


def process_env(media: Path, url: str | None = None, **extra: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url or database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings",
        "CAPTURE_TASKS": "database",
        "CAPTURE_FAULTS_MEDIA": str(media),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def start_worker(
    media: Path, log: Path, *, batch: bool = False, preexec_fn: Callable | None = None
) -> subprocess.Popen:
    """`manage.py db_worker` in its own process, on the test database, with the test's media folder."""
    cmd = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--queue-name",
        "default",
        "--interval",
        "0.1",
        "--no-startup-delay",
        "--no-reload",
    ]
    if batch:
        cmd.append("--batch")
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - our own manage.py with fixed arguments
            cmd,
            cwd=ROOT,
            env=process_env(media),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,  # only sets a resource limit in the child
        )


def run_worker_batch(
    media: Path, log: Path, *, preexec_fn: Callable | None = None, timeout: float = 90
) -> None:
    """Run a worker until the queue is empty (what a fresh worker does after a crash)."""
    worker = start_worker(media, log, batch=True, preexec_fn=preexec_fn)
    try:
        code = worker.wait(timeout=timeout)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0, f"the worker exited with {code}; its output:\n{log.read_text()[-3000:]}"


def wait_for(predicate: Callable, what: str, timeout: float = 60, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process stopped (exit {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def backend_waiting_for_a_lock(observer) -> int | None:
    """The pid of another backend on this database that waits for a lock (a worker we blocked)."""
    row = observer.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0] if row else None


def holds_write_lock(observer, pid: int, table: str) -> bool:
    """Whether backend `pid` has written to `table` in its open transaction (it holds RowExclusiveLock)."""
    return bool(
        observer.execute(
            "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = %s AND c.relname = %s AND l.mode = 'RowExclusiveLock' AND l.granted",
            (pid, table),
        ).fetchone()
    )


def backend_alive(observer, pid: int) -> bool:
    return bool(observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone())


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throw-away PostgreSQL cluster of our own (a test may restart it; the suite's may not be)."""

    def __init__(self, tmp: Path):
        bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        need(
            bindirs, "PostgreSQL's server programs (/usr/lib/postgresql/*/bin)", "apt-get install postgresql"
        )
        self.bin = bindirs[-1]
        self.dir = tmp
        self.runas: list[str] = []
        if os.getuid() == 0:
            shutil.chown(tmp, "postgres")
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._run("initdb", "-D", str(tmp / "data"), "-U", "capture", "--auth=trust", "-E", "UTF8")
        self.options = f"-h 127.0.0.1 -p {self.port} -k {tmp} -c fsync=off -c synchronous_commit=off"
        self._run(
            "pg_ctl", "-D", str(tmp / "data"), "-l", str(tmp / "log"), "-w", "-o", self.options, "start"
        )
        self.url = f"postgres://capture@127.0.0.1:{self.port}/capture"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "capture", "capture")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self.runas, str(self.bin / program), *args], check=True, capture_output=True)  # noqa: S603 - PostgreSQL's own programs

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is ended, open transactions roll back."""
        data, log = str(self.dir / "data"), str(self.dir / "log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-m", "fast", "-o", self.options, "restart")

    def copy_from(self, source_url: str) -> None:
        """Copy a database (schema and rows) into this cluster's `capture` database."""
        dump = subprocess.run(  # noqa: S603 - PostgreSQL's own program
            [str(self.bin / "pg_dump"), "--no-owner", "--no-privileges", "-d", conninfo(source_url)],
            check=True,
            capture_output=True,
        )
        subprocess.run(  # noqa: S603 - PostgreSQL's own program
            [str(self.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo(self.url)],
            input=dump.stdout,
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(  # noqa: S603 - PostgreSQL's own program
            [*self.runas, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
