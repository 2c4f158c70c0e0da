"""Load test (issue 8): mixed traffic against gunicorn + PostgreSQL, then a check that no update was lost.

    .venv/bin/python benchmarks/load.py                           # 60 s, 32 clients
    .venv/bin/python benchmarks/load.py --seconds 5 --clients 4   # toy size (CI)
    DATABASE_URL=postgres://… .venv/bin/python benchmarks/load.py # an existing, empty database

Set-up: a throw-away PostgreSQL cluster (or DATABASE_URL), `migrate`, `collectstatic`, the basic
definitions (fixtures/definitions/basic), a study with sites A and B, one data-manager user per client
with a session, an API token and a REDCap token, one subject per client and one shared subject per eight
clients (edited by four of them), each with a saved demographics record (version 1). gunicorn serves Capture with the production
settings (capture.settings.production: DEBUG off, secure cookies, WhiteNoise's manifest storage; only
the static and media folders moved into the temporary folder, and no TLS redirect on 127.0.0.1).

Each client is a thread that sends one request at a time, for --seconds:

  save own     POST the data-entry page of its own subject's record (its version kept by the client)
  save shared  even clients only: GET then POST the record of a subject shared with other clients, so
               saves collide; a collision must answer the conflict page, never overwrite silently
  dashboard    GET the study's record status dashboard
  api rest     GET /api/v1/studies/<study>/records/ with the client's token
  api redcap   POST /redcap/api/ content=record (a REDCap record export) with the client's REDCap token

Afterwards, from the database: every save that answered success is there (each record's version is 1 +
its successful saves; the last value written is the stored one; one audit event per save, carrying
the value; no value of a save answered as a conflict was written; the study's audit chain verifies).
Prints p50/p99 per kind and exits 1 on any error (a 5xx, a refused connection, an unexpected answer)
or lost update.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path[:0] = [str(ROOT), str(BENCH)]

from ecrf_bench import free_port, request, start_postgres  # noqa: E402 - benchmarks/ is put on the path above

# One pseudonym key for the whole run: every process (the seeding one, servers, workers) must use
# the key the database was made under, or Capture refuses to run (studies/pseudonyms.py).
PSEUDONYM_KEY = os.environ.setdefault("CAPTURE_PSEUDONYM_KEY", secrets.token_hex(32))

SLUG = "load"
FORM = "demographics"
EVENT = "baseline"
BASE_VALUES = {"sex": "1", "age": "50"}
CONFLICT_TEXT = b"while you were editing"


# ---------------------------------------------------------------------------- set-up


def write_settings(tmp: Path) -> None:
    """Production settings with the static and media folders in `tmp` (collectstatic writes there)."""
    (tmp / "load_settings.py").write_text(
        "from capture.settings.production import *  # noqa: F403\n"
        f"STATIC_ROOT = {str(tmp / 'static')!r}\n"
        f"MEDIA_ROOT = {str(tmp / 'media')!r}\n"
        "LOGGING = {'version': 1, 'disable_existing_loggers': False,\n"
        "    'handlers': {'stderr': {'class': 'logging.StreamHandler'}},\n"
        "    'loggers': {'django.request': {'handlers': ['stderr'], 'level': 'ERROR'}}}\n"
    )


def setup(clients: int) -> dict:
    import datetime as dt

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from capture.accounts.system import SYSTEM
    from capture.api.tokens import create_api_token, create_redcap_token
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.records.services import save_record
    from capture.studies import services

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    load_definitions([ROOT / "fixtures" / "definitions" / "basic"], actor=SYSTEM)
    study = services.create_study(
        actor=SYSTEM, slug=SLUG, name="Load", schedule=Schedule.objects.get(name="basic", version="1.0")
    )
    sites = [services.add_site(actor=SYSTEM, study=study, code=c, name=f"Site {c}") for c in "AB"]
    shared_count = max(1, clients // 8)
    subjects = [
        services.enroll_subject(
            actor=SYSTEM, study=study, site=sites[i % 2], enrollment_date=dt.date(2025, 1, 1)
        ).subject_id
        for i in range(clients + shared_count)
    ]
    users, config = [], {"clients": []}
    for i in range(clients):
        user = get_user_model().objects.create_user(f"load{i:02d}")  # no password: a session is made below
        services.grant_role(actor=SYSTEM, study=study, user=user, role="data_manager")
        users.append(user)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        config["clients"].append(
            {
                "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}",
                "token": create_api_token(user=user, name="load test")[1],
                "redcap": create_redcap_token(user=user, study=study)[1],
                "own": subjects[i],
                "shared": subjects[clients + (i // 2) % shared_count] if i % 2 == 0 else None,
            }
        )
    from capture.studies.models import Subject

    for subject in Subject.objects.filter(study=study):
        save_record(
            actor=users[0],
            subject=subject,
            event_name=EVENT,
            form_name=FORM,
            values={**BASE_VALUES, "weight": "1.0"},
        )
    config["shared"] = subjects[clients:]
    return config


# ---------------------------------------------------------------------------- traffic


class Client(threading.Thread):
    def __init__(self, index: int, port: int, config: dict, stop: float):
        super().__init__()
        self.index, self.port, self.stop = index, port, stop
        self.cfg = config
        self.rnd = random.Random(index)  # noqa: S311 - a traffic mix, nothing secret
        self.version = 1  # of the own record: +1 per successful save
        self.n = 0
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.saves: dict[str, list[str]] = defaultdict(list)  # subject -> values answered as saved, in order
        self.conflicts: dict[str, list[str]] = defaultdict(list)  # subject -> values answered as conflicts

    def call(self, kind: str, method: str, path: str, headers: dict, body: bytes | None = None):
        started = time.perf_counter()
        try:
            status, response_headers, data = request(self.port, method, path, headers, body)
        except OSError as exc:
            status, response_headers, data = 0, [], str(exc).encode()
        self.latency[kind].append(time.perf_counter() - started)
        return status, response_headers, data

    def fail(self, kind: str, status: int, data: bytes) -> None:
        self.errors.append(f"{kind}: {status} {data[:200]!r}")

    def entry(self, subject: str) -> str:
        return f"/studies/{SLUG}/subjects/{subject}/{EVENT}/{FORM}/1/edit/"

    def value(self) -> str:
        self.n += 1
        return f"{self.n * 100 + self.index}.0"  # unique per client and save (index < 100)

    def post(self, kind: str, subject: str, fields: dict):
        headers = {"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"}
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": self.csrf, "__status": "0", **fields}).encode()
        return self.call(kind, "POST", self.entry(subject), headers, body)

    def save_own(self) -> None:
        value = self.value()
        status, _, data = self.post(
            "save own", self.cfg["own"], {"__version": str(self.version), **BASE_VALUES, "weight": value}
        )
        if status == 302:
            self.version += 1
            self.saves[self.cfg["own"]].append(value)
        else:  # nobody else edits this record: anything but success is an error
            self.fail("save own", status, data)

    def save_shared(self) -> None:
        subject = self.cfg["shared"]
        status, _, page = self.call("save shared", "GET", self.entry(subject), {"Cookie": self.cookie})
        if status != 200:
            return self.fail("save shared GET", status, page)
        version = re.search(rb'name="__version" value="(\d*)"', page).group(1).decode()
        base = re.search(rb'name="__base" value="([^"]*)"', page).group(1).decode()
        value = self.value()
        fields = {"__version": version, "__base": base, **BASE_VALUES, "weight": value}
        status, _, data = self.post("save shared", subject, fields)
        if status == 302:
            self.saves[subject].append(value)
        elif status == 200 and CONFLICT_TEXT in data:
            self.conflicts[subject].append(value)
        else:
            self.fail("save shared", status, data)
        return None

    def prepare(self) -> None:
        """Get the CSRF token and warm the server with one request of each kind (not measured)."""
        cfg = self.cfg
        status, headers, page = request(self.port, "GET", self.entry(cfg["own"]), {"Cookie": cfg["cookie"]})
        if status != 200:
            raise SystemExit(
                f"GET {self.entry(cfg['own'])} answered {status}; the set-up is broken: {page[:500]!r}"
            )
        self.csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        csrf_cookie = next(
            v.split(";")[0] for k, v in headers if k.lower() == "set-cookie" and v.startswith("csrftoken=")
        )
        self.cookie = f"{cfg['cookie']}; {csrf_cookie}"
        for step in (self.dashboard, self.api_rest, self.api_redcap):
            step()
        self.latency.clear()

    def dashboard(self) -> None:
        status, _, data = self.call("dashboard", "GET", f"/studies/{SLUG}/", {"Cookie": self.cookie})
        if status != 200:
            self.fail("dashboard", status, data)

    def api_rest(self) -> None:
        path = f"/api/v1/studies/{SLUG}/records/?limit=100"
        status, _, data = self.call("api rest", "GET", path, {"Authorization": f"Token {self.cfg['token']}"})
        if status != 200:
            self.fail("api rest", status, data)

    def api_redcap(self) -> None:
        body = urllib.parse.urlencode(
            {"token": self.cfg["redcap"], "content": "record", "format": "json", "type": "flat"}
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, data = self.call("api redcap", "POST", "/redcap/api/", headers, body)
        if status != 200:
            self.fail("api redcap", status, data)

    def run(self) -> None:
        cfg = self.cfg
        while time.perf_counter() < self.stop:
            r = self.rnd.random()
            if r < 0.45:
                self.save_own()
            elif r < 0.60:
                self.save_shared() if cfg["shared"] else self.save_own()
            elif r < 0.85:
                self.dashboard()
            elif r < 0.93:
                self.api_rest()
            else:
                self.api_redcap()


# ---------------------------------------------------------------------------- verification


def verify(clients: list[Client]) -> tuple[list[str], dict]:
    """Compare what the clients were told with what the database holds. Returns (lost updates, counts)."""
    from capture.audit.models import AuditEvent
    from capture.audit.services import chain_key, verify_chain
    from capture.records.models import FormRecord
    from capture.studies.models import Study

    saves: dict[str, list[str]] = defaultdict(list)
    conflicts: dict[str, set[str]] = defaultdict(set)
    last_own: dict[str, str] = {}
    for c in clients:
        for subject, values in c.saves.items():
            saves[subject] += values
            if subject == c.cfg["own"] and values:
                last_own[subject] = values[-1]
        for subject, values in c.conflicts.items():
            conflicts[subject] |= set(values)
    study = Study.objects.get(slug=SLUG)
    problems = []
    records = FormRecord.objects.filter(subject__study=study, form_name=FORM).select_related("subject")
    for record in records:
        sid = record.subject.subject_id
        told = saves.get(sid, [])
        events = list(
            AuditEvent.objects.filter(object_type="record", object_id=str(record.pk), action="record.update")
            .order_by("seq")
            .values_list("after", flat=True)
        )
        audited = [str(e["weight"]) for e in events if "weight" in e]
        if record.version != 1 + len(told):
            problems.append(f"{sid}: version {record.version}, but {len(told)} saves answered success")
        if len(events) != len(told) or sorted(map(Decimal, audited)) != sorted(map(Decimal, told)):
            problems.append(f"{sid}: {len(told)} saves answered success, {len(events)} audited")
        stored = Decimal(str(record.data.get("weight")))
        if told and stored != Decimal(audited[-1] if audited else "NaN"):
            problems.append(f"{sid}: stored weight {stored} is not the last audited save")
        if sid in last_own and stored != Decimal(last_own[sid]):
            problems.append(f"{sid}: stored weight {stored}, its client last saved {last_own[sid]}")
        overwritten = {Decimal(v) for v in conflicts.get(sid, ())} & set(map(Decimal, audited))
        if overwritten:
            problems.append(f"{sid}: values answered as conflicts were written: {sorted(overwritten)[:5]}")
    chain = verify_chain(chain_key(study))
    problems += [f"audit chain: {p}" for p in chain[:5]]
    counts = {
        "saves": sum(len(v) for v in saves.values()),
        "conflicts": sum(len(v) for v in conflicts.values()),
        "records": records.count(),
    }
    return problems, counts


# ---------------------------------------------------------------------------- main


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    """gunicorn serving Capture on 127.0.0.1:`port`, once it answers."""
    server = subprocess.Popen(  # noqa: S603 - gunicorn with arguments built here
        [
            sys.executable,
            "-m",
            "gunicorn",
            "capture.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ},
    )
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit("gunicorn stopped while starting; its output is above.")
        try:
            if request(port, "GET", "/accounts/login/", {})[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("gunicorn did not answer within 30 s.")
    return server


def run_clients(clients: list, seconds: float) -> float:
    """Warm the clients up, then let them send traffic for `seconds`; the seconds it took."""
    t = time.perf_counter()
    warm = [threading.Thread(target=c.prepare) for c in clients]
    for w in warm:
        w.start()
    for w in warm:
        w.join()
    print(f"warmed up in {time.perf_counter() - t:.1f} s; {seconds:g} s of traffic")
    started = time.perf_counter()
    for c in clients:
        c.stop = started + seconds
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.perf_counter() - started
    return elapsed


def report(clients: list, elapsed: float, workers: int, n_clients: int) -> bool:
    """Print latencies, throughput, errors and lost updates; True when there were neither."""
    latency: dict[str, list[float]] = defaultdict(list)
    for c in clients:
        for kind, values in c.latency.items():
            latency[kind] += values
    errors = [e for c in clients for e in c.errors]
    lost, counts = verify(clients)
    total = sum(len(v) for v in latency.values())
    print(
        f"\nload · PostgreSQL · gunicorn {workers} sync workers · {n_clients} clients · "
        f"{elapsed:.0f} s · {os.cpu_count()} CPUs (shared with the clients)"
    )
    print(f"{'kind':<14}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    latency.pop("first GET", None)
    total = sum(len(v) for v in latency.values())
    for kind in ("save own", "save shared", "dashboard", "api rest", "api redcap"):
        values = latency.get(kind, [])
        print(f"{kind:<14}{len(values):>10}{percentile(values, 0.5):>10.0f}{percentile(values, 0.99):>10.0f}")
    every = [x for v in latency.values() for x in v]
    print(f"{'all':<14}{total:>10}{percentile(every, 0.5):>10.0f}{percentile(every, 0.99):>10.0f}")
    print(f"\n{total / elapsed:.0f} requests/s")
    print(
        f"saves answered success: {counts['saves']}, answered as edit conflicts: {counts['conflicts']}, "
        f"records checked: {counts['records']}"
    )
    print(f"errors (5xx, refused, unexpected): {len(errors)}")
    print(f"lost updates: {len(lost)}")
    for line in (errors + lost)[:20]:
        print("  " + line)
    return not (errors or lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1, help="gunicorn workers")
    args = parser.parse_args()
    if not 1 <= args.clients < 100:
        raise SystemExit("--clients must be between 1 and 99 (saved values encode the client's number)")

    tmp = Path(tempfile.mkdtemp(prefix="capture-load-"))
    stop_pg, server = None, None
    try:
        if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
            os.environ["DATABASE_URL"], stop_pg = start_postgres(tmp)
        write_settings(tmp)
        os.environ.update(
            DJANGO_SETTINGS_MODULE="load_settings",
            PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]),
            CAPTURE_SECRET_KEY=secrets.token_hex(32),
            CAPTURE_PSEUDONYM_KEY=PSEUDONYM_KEY,
            CAPTURE_ALLOWED_HOSTS="127.0.0.1",
            CAPTURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1; behind nginx it stays on
            CAPTURE_TASKS="database",
            DATABASE_CONN_MAX_AGE="60",  # as docs/deploy.md suggests
        )
        sys.path.insert(0, str(tmp))
        t = time.perf_counter()
        config = setup(args.clients)
        print(
            f"set-up (migrate, collectstatic, study, {args.clients} users) in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        port = free_port()
        server = start_gunicorn(port, args.workers)
        print(f"gunicorn up after {time.perf_counter() - t:.1f} s")
        clients = [Client(i, port, c, 0.0) for i, c in enumerate(config["clients"])]
        elapsed = run_clients(clients, args.seconds)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server = None
        if not report(clients, elapsed, args.workers, args.clients):
            raise SystemExit(1)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if stop_pg:
            subprocess.run(stop_pg, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
