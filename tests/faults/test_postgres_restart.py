"""PostgreSQL restarted (`pg_ctl restart -m fast`) under a running gunicorn (issue 8, faults).

A cluster of the test's own (the suite's cluster is shared with other test processes) gets a copy of
the test database; gunicorn serves it. A save is held mid-transaction by a row lock when the cluster
restarts: the save must fail cleanly (a 500, nothing written) and the next requests must succeed.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from capture.audit.models import AuditEvent
from capture.records.models import FormRecord
from capture.records.services import save_record

from .procs import ROOT, Cluster, conninfo, database_url, free_port, process_env, requires_postgres, wait_for

pytestmark = requires_postgres

VALUES = {"sex": "1", "age": "50"}


class Server:
    """One gunicorn sync worker on `url`'s database: every request goes through the same process,
    so a broken connection left in it would show."""

    def __init__(self, url: str, media: Path, log: Path, conn_max_age: int):
        self.port = free_port()
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - gunicorn with fixed arguments
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "capture.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "60",
                ],
                cwd=ROOT,
                env=process_env(media, url, DATABASE_CONN_MAX_AGE=str(conn_max_age)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, "gunicorn to answer", timeout=30, process=self.process)

    def _answers(self) -> bool:
        try:
            return self.request("GET", "/accounts/login/")[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def served(media, subjects, personas, tmp_path, request):
    """(server, cluster, record url, session cookie) for a saved demographics record of A-0001."""
    dm = personas["data_manager"]
    save_record(
        actor=dm, subject=subjects["a"], event_name="baseline", form_name="demographics", values=VALUES
    )
    session = SessionStore()
    session[SESSION_KEY] = str(dm.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = dm.get_session_auth_hash()
    session.create()
    # A short folder: the cluster's Unix socket lives there, and socket paths are limited to 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="capture-fault-pg-"))
    cluster = Cluster(folder)
    server = None
    try:
        cluster.copy_from(database_url())
        server = Server(cluster.url, media, tmp_path / "gunicorn.log", request.param)
        yield (
            server,
            cluster,
            f"/studies/trial/subjects/{subjects['a'].subject_id}/baseline/demographics/1/edit/",
            f"sessionid={session.session_key}",
        )
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _form(server: Server, url: str, cookie: str) -> tuple[dict, str]:
    status, headers, body = server.request("GET", url, {"Cookie": cookie})
    assert status == 200, body[:500]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    version = re.search(rb'name="__version" value="(\d*)"', body).group(1).decode()
    csrf = next(
        v.split(";")[0] for k, v in headers if k.lower() == "set-cookie" and v.startswith("csrftoken=")
    )
    fields = {"csrfmiddlewaretoken": token, "__version": version, "__status": "0", **VALUES}
    return fields, f"{cookie}; {csrf}"


def _post(server: Server, url: str, cookie: str, fields: dict):
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return server.request("POST", url, headers, urllib.parse.urlencode(fields).encode())


def _stored(cluster: Cluster) -> tuple[int, int, int]:
    """(record version, stored age, audit events) as the restarted cluster has them."""
    with psycopg.connect(conninfo(cluster.url)) as conn:
        version, data = conn.execute(
            f"SELECT version, data FROM {FormRecord._meta.db_table} WHERE form_name = 'demographics'"  # noqa: S608 - a model's table name
        ).fetchone()
        events = conn.execute(f"SELECT count(*) FROM {AuditEvent._meta.db_table}").fetchone()[0]  # noqa: S608 - as above
    return version, data["age"], events


@pytest.mark.parametrize("served", [0], indirect=True, ids=["conn_max_age=0"])
def test_a_save_open_during_a_restart_fails_cleanly_and_the_next_one_succeeds(served):
    server, cluster, url, cookie = served
    fields, cookie = _form(server, url, cookie)
    before = _stored(cluster)
    answer: list = []
    holder = psycopg.connect(conninfo(cluster.url))
    observer = psycopg.connect(conninfo(cluster.url), autocommit=True)
    try:
        # The save waits for this row lock inside its transaction: it is open when the cluster restarts.
        holder.execute(f"SELECT 1 FROM {FormRecord._meta.db_table} FOR UPDATE")  # noqa: S608 - a model's table name
        post = threading.Thread(
            target=lambda: answer.append(_post(server, url, cookie, {**fields, "age": "61"}))
        )
        post.start()
        wait_for(
            lambda: observer.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone(),
            "the save to wait for the row lock",
        )
        cluster.restart()
    finally:
        holder.close()  # both were ended by the restart
        observer.close()
    post.join(timeout=60)
    status, _, body = answer[0]
    assert status == 500, f"a request cut by a restart should answer a plain 500, not {status}"
    assert b"Traceback" not in body and b"psycopg" not in body, "the error page must not show internals"
    assert _stored(cluster) == before, "the interrupted save must leave no trace"

    assert server.request("GET", url, {"Cookie": cookie})[0] == 200, "the next request must reconnect"
    fields, cookie = _form(server, url, cookie)
    assert _post(server, url, cookie, {**fields, "age": "62"})[0] == 302
    assert _stored(cluster) == (before[0] + 1, 62, before[2] + 1)


@pytest.mark.parametrize("served", [60], indirect=True, ids=["conn_max_age=60"])
def test_an_idle_persistent_connection_is_replaced_after_a_restart(served):
    """With DATABASE_CONN_MAX_AGE (docs/deploy.md suggests 60) each gunicorn worker keeps its connection
    between requests; after a restart that connection is dead, and the first request must not fail."""
    server, cluster, url, cookie = served
    assert server.request("GET", url, {"Cookie": cookie})[0] == 200  # the worker now holds a connection
    cluster.restart()
    time.sleep(0.2)
    statuses = [server.request("GET", url, {"Cookie": cookie})[0] for _ in range(2)]
    assert statuses == [200, 200], (
        f"requests after the restart answered {statuses}: the kept connection was used although dead. "
        "Django checks a kept connection before reuse only with CONN_HEALTH_CHECKS=True "
        "(dj_database_url.config(conn_health_checks=True) in capture/settings/base.py)."
    )
