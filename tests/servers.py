"""Throw-away servers for the tests and benchmarks (Orthanc in tests/imaging/orthanc_server.py, moto's
S3 in tests/storage/s3server.py): a program started on 127.0.0.1 at a free port, waited for until an
HTTP URL of it answers, and stopped."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now: the caller starts its server on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    command: list[str], *, log: Path, ready_url: str, name: str, timeout: float = 30
) -> subprocess.Popen:
    """Run `command`, its output to `log`, and return its process once `ready_url` answers.
    RuntimeError naming `name` and the log if it exits first or does not answer within `timeout` s."""
    with log.open("w") as handle:  # the server keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603 - the tests' own commands
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(ready_url, timeout=1):  # noqa: S310 - a local test server
                return process
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{name} did not start; see {log}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """Ask the server to end; kill it if it has not within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
