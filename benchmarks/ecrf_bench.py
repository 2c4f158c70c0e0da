"""Benchmark of data entry (issue 9): Capture's 40-item form against plain Django, same server, same run.

    .venv/bin/python benchmarks/ecrf_bench.py --toy          # CI: 2 s per scenario, 4 clients
    .venv/bin/python benchmarks/ecrf_bench.py                # 20 s per scenario, 16 clients
    .venv/bin/python benchmarks/ecrf_bench.py --postgres     # on a throw-away PostgreSQL cluster
    .venv/bin/python benchmarks/ecrf_bench.py --postgres --profile 200   # where a GET and a save spend
    DATABASE_URL=postgres://… .venv/bin/python benchmarks/ecrf_bench.py

One gunicorn (sync workers, DEBUG off) on 127.0.0.1 serves Capture with two reference views
(benchmarks/ecrf_benchsite): a hello-world view, and a plain Django ModelForm of the same 40
fields (radio choices, integers, decimals, dates, text) rendered with `{{ form }}` and saved
with `form.save()`. A load loop in this process (threads, one request at a time each; gunicorn's
sync workers close each connection) drives, for the same time and concurrency:

  hello        GET  the hello-world view
  plain GET    GET  the plain Django form
  capture GET  GET  Capture's data-entry page for a saved 40-item record (branching, choices,
                    calculations, missing-data code menus, history links, the whole page)
  plain POST   POST the plain form (validate + insert a row)
  capture POST POST Capture's page (validate, calculate, branch, version check, update the record
                    and append its audit event to the study's hash chain; each client has its own
                    subject, so no edit conflicts)

It prints requests/s, p50 and p99 for each and the ratios the issue sets as targets:
Capture GET ≥ 5 × plain GET, Capture POST ≥ plain POST, p99 < 150 ms. All requests carry the same
logged-in session (Capture's pages need one; the references get it too, so the middleware cost is
the same). The load loop shares the machine with the server, as wrk would.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
ITEMS = 40
KINDS = ["choice", "integer", "decimal", "date", "text"]


# ---------------------------------------------------------------------------- definitions


def write_definitions(folder: Path) -> None:
    """40 items of the same kinds as the plain reference; every 8th item has branching, two calculations."""
    elements, items = [], []
    for n in range(ITEMS):
        kind = KINDS[n % len(KINDS)]
        element = {
            "public_id": f"capture.bench_{n:02d}",
            "version": "1.0",
            "name": f"f{n:02d}",
            "long_name": f"Bench item {n}",
            "question": f"Question number {n} of the benchmark form",
            "datatype": {
                "choice": "text",
                "integer": "integer",
                "decimal": "decimal",
                "date": "date",
                "text": "text",
            }[kind],
        }
        if kind == "choice":
            element["permissible_values"] = [
                {"code": str(c), "meaning": m} for c, m in enumerate(["One", "Two", "Three", "Four"], 1)
            ]
        if kind == "decimal":
            element["decimal_places"] = 1
        if kind == "integer":
            element.update(min=0, max=100000)
        if kind == "text":
            element["max_length"] = 100
        elements.append(element)
        item = {"element": f"capture.bench_{n:02d}@1.0"}
        if kind == "choice":
            item["widget"] = "radio"
        if n % 8 == 7:
            item["branching"] = f"[f{n - 7:02d}] = '1' or [f{n - 2:02d}] <> ''"
        items.append(item)
    items[36]["calculation"] = "round([f01] * 2 + [f02])"  # an integer item, computed
    items[37]["calculation"] = "sum([f06], [f11], [f16])"
    import yaml

    (folder / "elements.yaml").write_text(yaml.safe_dump({"elements": elements}))
    sections = [{"title": f"Section {s + 1}", "items": items[s * 10 : (s + 1) * 10]} for s in range(4)]
    (folder / "form.yaml").write_text(
        yaml.safe_dump({"form": "bench", "version": "1.0", "title": "Benchmark form", "sections": sections})
    )
    (folder / "schedule.yaml").write_text(
        yaml.safe_dump(
            {
                "schedule": "bench",
                "version": "1.0",
                "title": "Benchmark",
                "arms": [
                    {
                        "name": "p",
                        "title": "P",
                        "events": [{"name": "v1", "title": "V1", "forms": ["bench@1.0"]}],
                    }
                ],
            }
        )
    )


def values_for(n_variant: int) -> dict[str, str]:
    values = {}
    for n in range(ITEMS):
        kind = KINDS[n % len(KINDS)]
        values[f"f{n:02d}"] = {
            "choice": "1",
            "integer": str(40 + n),
            "decimal": f"{n}.5",
            "date": "2025-03-01",
            "text": f"some text for item {n}",
        }[kind]
    values["f04"] = f"variant {n_variant}"  # each POST changes a value, so each one writes
    return values


# ---------------------------------------------------------------------------- set-up


def setup(clients: int, tmp: Path) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.records.models import Status
    from capture.records.services import save_record
    from capture.studies import services

    call_command("migrate", run_syncdb=True, verbosity=0)
    folder = tmp / "definitions"
    folder.mkdir()
    write_definitions(folder)
    load_definitions([folder], actor=SYSTEM)
    user = get_user_model().objects.create_user("bench", password="bench-password-not-secret")  # noqa: S106
    study = services.create_study(
        actor=SYSTEM, slug="bench", name="Bench", schedule=Schedule.objects.get(name="bench")
    )
    services.add_site(actor=SYSTEM, study=study, code="A", name="Site A")
    site = study.sites.get()
    services.grant_role(actor=SYSTEM, study=study, user=user, role="coordinator", sites=[site])
    import datetime as dt

    subjects = [
        services.enroll_subject(actor=user, study=study, site=site, enrollment_date=dt.date(2025, 3, 1))
        for _ in range(clients + 2)  # one to read, one per client, one for the in-process timings
    ]
    save_record(
        actor=user,
        subject=subjects[0],
        event_name="v1",
        form_name="bench",
        values=values_for(0),
        status=Status.UNVERIFIED,
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {
        "session": f"{settings.SESSION_COOKIE_NAME}={session.session_key}",
        "subjects": [s.subject_id for s in subjects],
    }


# ---------------------------------------------------------------------------- in-process layer timings


def layer_timings(subject_ids: list[str], rounds: int) -> dict:
    """Median ms of the form layer alone, interleaved so that machine load hits both sides alike:
    rendering the form body (plain `{{ form }}` vs Capture's skeleton fill with branching and
    calculations), and validate+save (ModelForm.save vs save_record with audit)."""
    from django.contrib.auth import get_user_model
    from django.template import engines
    from ecrf_benchsite.views import PlainForm

    from capture.records import entry
    from capture.records.compiled import compiled
    from capture.records.models import FormRecord
    from capture.records.services import save_record
    from capture.studies.models import Subject

    record = FormRecord.objects.select_related("form", "subject__study").get(
        subject__subject_id=subject_ids[0]
    )
    study = record.subject.study
    missing = list(study.missing_codes)
    template = engines["django"].from_string("{{ form }}")
    user = get_user_model().objects.get(username="bench")
    subject = Subject.objects.get(study=study, subject_id=subject_ids[-1])
    plain_values = values_for(0)

    def plain_render():
        template.render({"form": PlainForm(initial=plain_values)})

    def capture_render():
        c = compiled(record.form)
        values, rows = entry.display_values(c, record.data)
        hidden, _ = entry.visible_state(c, values, rows, events=None, missing=frozenset())
        entry.render_form(
            c, record.form.spec, missing=missing, values=values, rows=rows, hidden=hidden, errors={}
        )

    def plain_save(n):
        form = PlainForm(values_for(n))
        assert form.is_valid(), form.errors
        form.save()

    versions = [None]

    def capture_save(n):
        saved = save_record(
            actor=user,
            subject=subject,
            event_name="v1",
            form_name="bench",
            values=values_for(n),
            status=1,
            expected_version=versions[0],
        )
        versions[0] = saved.version

    timings: dict[str, list[float]] = {
        k: [] for k in ("plain render", "capture render", "plain save", "capture save")
    }
    for n in range(rounds):
        for name, call in (
            ("plain render", plain_render),
            ("capture render", capture_render),
            ("plain save", lambda n=n: plain_save(n)),
            ("capture save", lambda n=n: capture_save(n)),
        ):
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000)
    return {k: statistics.median(v) for k, v in timings.items()}


def profile(config: dict, rounds: int, top: int = 18) -> None:
    """cProfile of `rounds` Capture GETs (Django's test client: the whole middleware stack, no
    HTTP) and `rounds` save_record calls, with the time spent waiting for the database measured
    apart (a wrapper round every statement): where a request's time goes."""
    import cProfile
    import pstats
    from collections import Counter

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from capture.records.services import save_record
    from capture.studies.models import Subject

    client = Client()
    name, key = config["session"].split("=", 1)
    client.cookies[name] = key
    assert name == settings.SESSION_COOKIE_NAME
    url = "/studies/bench/subjects/{}/v1/bench/1/edit/".format(config["subjects"][0])
    user = get_user_model().objects.get(username="bench")
    subject = Subject.objects.get(study__slug="bench", subject_id=config["subjects"][-1])
    db = Counter()

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            db["seconds"] += time.perf_counter() - started
            db["statements"] += 1

    version = [None]

    def save(n):
        saved = save_record(
            actor=user,
            subject=subject,
            event_name="v1",
            form_name="bench",
            values=values_for(n),
            status=1,
            expected_version=version[0],
        )
        version[0] = saved.version

    for label, call in (("GET entry page", lambda n: client.get(url)), ("save_record", save)):
        call(0)  # warm: compiled form, kept slot
        db.clear()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            profiler.enable()
            for n in range(1, rounds + 1):
                call(n)
            profiler.disable()
        total = (time.perf_counter() - started) / rounds * 1000
        per_db = db["seconds"] / rounds * 1000
        print(
            f"\nprofile · {label}: {total:.2f} ms a call (profiler on), of which {per_db:.2f} ms waiting for "
            f"{db['statements'] / rounds:.0f} statements; functions by own time:"
        )
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(top)
        print(f"{label}: Capture's own functions and Django's big steps, by cumulative time:")
        stats.sort_stats("cumulative").print_stats(r"capture/|template/base.py.*\(render\)|execute_sql", top)


def print_chain_check() -> None:
    """Speed must not cost integrity: every concurrent save's audit event is in the study's chain."""
    from django.db import connection

    from capture.audit.models import AuditEvent
    from capture.audit.services import verify_all

    connection.close()  # the server's writes are committed; read them afresh
    checked, problems = verify_all()
    saves = AuditEvent.objects.filter(action__startswith="record.").count()
    print(f"audit chain: {checked} events ({saves} record saves), {len(problems)} problems")
    if problems:
        raise SystemExit("the audit chain does not verify: " + "; ".join(map(str, problems[:5])))


# ---------------------------------------------------------------------------- load


def request(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, response.getheaders(), data
    finally:
        conn.close()


def run(port: int, seconds: float, clients: int, make_request) -> dict:
    """`make_request(client_index, n)` -> (method, path, headers, body, ok_statuses). Runs for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            method, path, headers, body, ok, *after = make_request(index, n)
            started = time.perf_counter()
            try:
                status, _, data = request(port, method, path, headers, body)
            except OSError:
                status, data = 0, b""
            if after:
                after[0](status, data)
            latencies[index].append(time.perf_counter() - started)
            if status not in ok:
                errors[index] += 1
            n += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return {
        "requests": len(flat),
        "rps": len(flat) / elapsed,
        "p50": statistics.median(flat) * 1000 if flat else 0,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000 if flat else 0,
        "errors": sum(errors),
    }


def csrf(port: int, cookie: str, path: str) -> tuple[str, str]:
    status, headers, body = request(port, "GET", path, {"Cookie": cookie})
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}; the benchmark set-up is broken:\n{body[:2000]!r}")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    cookie_value = next(
        v.split(";")[0] for k, v in headers if k.lower() == "set-cookie" and v.startswith("csrftoken=")
    )
    return token, cookie_value


def wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise SystemExit("gunicorn stopped while starting; run it by hand to see why.")
        try:
            if request(port, "GET", "/bench/hello/", {})[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer within 20 s.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- PostgreSQL


def start_postgres(tmp: Path) -> tuple[str, list[str]]:
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bindirs:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or set DATABASE_URL.")
    bindir = bindirs[-1]
    data = tmp / "pg"
    runas: list[str] = []
    if os.getuid() == 0:
        shutil.chown(tmp, "postgres")
        runas = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(  # noqa: S603 - a fixed program with arguments built here
        [*runas, str(bindir / "initdb"), "-D", str(data), "-U", "capture", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off -c synchronous_commit=off -c max_connections=200"
    subprocess.run(  # noqa: S603 - a fixed program with arguments built here
        [
            *runas,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(tmp / "pg.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(  # noqa: S603 - a fixed program with arguments built here
        [*runas, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "capture", "bench"],
        check=True,
        capture_output=True,
    )
    stop = [*runas, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
    return f"postgres://capture@127.0.0.1:{port}/bench", stop


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="2 s per scenario with 4 clients (CI)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1)
    parser.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL cluster")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="profile N GETs and N saves in-process instead"
    )
    args = parser.parse_args()
    if args.toy:
        args.seconds, args.clients = 2, 4

    sys.path[:0] = [str(ROOT), str(BENCH)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "ecrf_benchsite.settings"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH), os.environ.get("PYTHONPATH", "")])
    tmp = Path(tempfile.mkdtemp(prefix="capture-ecrf-bench-"))
    stop_pg = None
    server = None
    try:
        if args.postgres:
            os.environ["DATABASE_URL"], stop_pg = start_postgres(tmp)
        if not os.environ.get("DATABASE_URL"):
            os.environ["BENCH_SQLITE"] = str(tmp / "bench.sqlite3")
        database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
        config = setup(args.clients, tmp)
        if args.profile:
            profile(config, args.profile)
            return
        layers = layer_timings(config["subjects"], 30 if args.toy else 300)
        port = free_port()
        server = subprocess.Popen(  # noqa: S603 - gunicorn, arguments built here
            [
                sys.executable,
                "-m",
                "gunicorn",
                "capture.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--env",
                "DJANGO_SETTINGS_MODULE=ecrf_benchsite.settings",
            ],
            cwd=ROOT,
            env={**os.environ},
        )
        wait_for(port, server)
        session = config["session"]
        subjects = config["subjects"]
        entry = "/studies/bench/subjects/{}/v1/bench/1/edit/"
        token, csrf_cookie = csrf(port, session, entry.format(subjects[0]))
        cookie = f"{session}; {csrf_cookie}"
        form_headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        versions = [0] * args.clients

        def get(path):
            return lambda i, n: ("GET", path, {"Cookie": cookie}, None, (200,))

        def plain_post(i, n):
            body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **values_for(n)}).encode()
            return "POST", "/bench/plain/", form_headers, body, (302,)

        def capture_post(i, n):
            # One subject per client; the version moves by one per successful save.
            fields = {
                "csrfmiddlewaretoken": token,
                "__status": "1",
                "__version": str(versions[i] or ""),
                **values_for(n),
            }

            def after(status, data):
                if status == 302:
                    versions[i] += 1
                else:
                    banner = re.search(rb"id=\"banner\">([^<]*)", data)
                    print(
                        f"capture POST answered {status}: {banner.group(1) if banner else data[:200]!r}",
                        file=sys.stderr,
                    )
                    found = re.search(rb'name="__version" value="(\d*)"', data)
                    versions[i] = int(found.group(1)) if found and found.group(1) else versions[i]

            body = urllib.parse.urlencode(fields).encode()
            return "POST", entry.format(subjects[i + 1]), form_headers, body, (302,), after

        scenarios = [
            ("hello", lambda i, n: ("GET", "/bench/hello/", {}, None, (200,))),
            ("plain GET", get("/bench/plain/")),
            ("capture GET", get(entry.format(subjects[0]))),
            ("plain POST", plain_post),
            ("capture POST", capture_post),
        ]
        # Warm every worker: the first render of a form version compiles its skeleton.
        for _, make in scenarios[:3]:
            run(port, 1 if not args.toy else 0.3, args.clients, make)
        results = {}
        print(
            f"ecrf benchmark · {database} · gunicorn {args.workers} sync workers · {args.clients} clients · "
            f"{args.seconds:g} s per scenario · {os.cpu_count()} CPUs (shared with the load loop)"
        )
        print(f"{'scenario':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}")
        for name, make in scenarios:
            r = results[name] = run(port, args.seconds, args.clients, make)
            print(
                f"{name:<14}{r['rps']:>10.0f}{r['p50']:>10.1f}{r['p99']:>10.1f}{r['requests']:>10}{r['errors']:>8}"
            )
        hello = results["hello"]["rps"]
        print()
        print(f"plain GET    = {results['plain GET']['rps'] / hello:6.1%} of hello world")
        print(
            f"capture GET  = {results['capture GET']['rps'] / results['plain GET']['rps']:5.2f} × plain GET   "
            f"(target ≥ 5)"
        )
        print(
            f"capture POST = {results['capture POST']['rps'] / results['plain POST']['rps']:5.2f} × plain POST  "
            f"(target ≥ 1)"
        )
        worst = max(results[n]["p99"] for n in ("capture GET", "capture POST"))
        print(f"capture p99  = {worst:.0f} ms (target < 150 ms)")
        print()
        print("The form layer alone, in this process (median ms, interleaved):")
        print(
            f"  render 40 items:  plain {{{{ form }}}} {layers['plain render']:.2f}  ·  Capture skeleton "
            f"{layers['capture render']:.2f}  →  {layers['plain render'] / layers['capture render']:.1f} × faster"
        )
        print(
            f"  validate + save:  plain ModelForm {layers['plain save']:.2f}  ·  Capture save_record "
            f"{layers['capture save']:.2f}  →  {layers['plain save'] / layers['capture save']:.2f} ×"
        )
        print_chain_check()
        if any(r["errors"] for r in results.values()):
            raise SystemExit("some requests failed; the figures above are not valid.")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if stop_pg:
            subprocess.run(stop_pg, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
