"""The tests' throw-away server helper (tests/servers.py): a program on a free port is returned once
its URL answers and ends when stopped; one that exits at once is reported with its log."""

from __future__ import annotations

import re
import sys
import urllib.request

import pytest

from tests import servers


def test_a_started_server_answers_at_its_url_and_is_gone_once_stopped(tmp_path):
    port = servers.free_port()
    (tmp_path / "hello.txt").write_text("hello")
    command = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(tmp_path), str(port)]
    url = f"http://127.0.0.1:{port}/hello.txt"
    process = servers.start(command, log=tmp_path / "http.log", ready_url=url, name="http.server")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the local server above
        assert response.read() == b"hello"
    servers.stop(process)
    assert process.poll() is not None


def test_a_server_that_exits_at_once_is_reported_by_name_with_its_log(tmp_path):
    command = [sys.executable, "-c", "print('no such config'); raise SystemExit(2)"]
    log = tmp_path / "broken.log"
    url = f"http://127.0.0.1:{servers.free_port()}/"
    with pytest.raises(RuntimeError, match=re.escape(f"Broken server did not start; see {log}")):
        servers.start(command, log=log, ready_url=url, name="Broken server")
    assert log.read_text() == "no such config\n"
