"""Benchmark of the audit log page (issue 15): first page, filtered pages and the CSV export.

    .venv/bin/python benchmarks/audit_page.py                                # toy size (CI), SQLite
    .venv/bin/python benchmarks/audit_page.py --postgres --events 1000000    # the issue's size

Seeds one study (4 sites, a subject per 500 events, a demographics record each) and N audit events
in its chain, in a throw-away SQLite database (or DATABASE_URL, or --postgres: a PostgreSQL cluster
of its own on a free port). The events are BULK-INSERTED DIRECTLY (COPY on PostgreSQL, executemany
on SQLite, capture/dbcopy.py), not written through record_event: a million service calls would take
an hour. They are still a valid chain (each hash computed as AuditEvent.compute_hash does, the
chain head updated), spread evenly over two years: 80 % record.update of a subject's record,
5 % record.lock, 10 % export.run, 5 % membership.grant, by 12 users.

Then, in a fresh process, the audit page is requested through Django's test client (the whole
view: access, query, disclosure, template) `--runs` times per scenario, and the p50 and p95 printed
against the target (200 ms): the first page; a deep page (a cursor half-way down); filtered by user,
by user and action, by subject, by site, by a week's date range; and the first page as a monitor
(de-identified: values through the disclosure policy). Last, in another fresh process, the CSV of
a date range holding about 100,000 events (fewer at toy size) is streamed and counted; printed with
its time and the process's peak RSS (VmHWM) beside its RSS before the export. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ecrf_bench import start_postgres  # noqa: E402 - the benchmarks' shared server helper

PSEUDONYM_KEY = os.environ.setdefault("CAPTURE_PSEUDONYM_KEY", secrets.token_hex(32))
TARGET_MS = 200
SPAN_DAYS = 730
SITES = ("A", "B", "C", "D")
USERS = [f"user{n:02d}" for n in range(1, 13)]


def django_setup(db: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    os.environ["DATABASE_URL"] = db
    import django

    django.setup()


def child(*args: str) -> dict:
    # Re-runs this very script with arguments it made itself: no outside input reaches the command.
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def proc_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- seeding


def seed(db: str, events: int) -> dict:
    django_setup(db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from capture.accounts.system import SYSTEM
    from capture.audit.models import AuditChain, AuditEvent
    from capture.audit.services import chain_key
    from capture.dbcopy import insert_rows
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import EventForm, Schedule
    from capture.records.models import FormRecord
    from capture.studies import services
    from capture.studies.models import Subject

    call_command("migrate", verbosity=0)
    load_definitions([ROOT / "fixtures" / "definitions" / "basic"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="basic")
    study = services.create_study(actor=SYSTEM, slug="bench", name="Bench", schedule=schedule)
    sites = [services.add_site(actor=SYSTEM, study=study, code=c, name=f"Site {c}") for c in SITES]
    users = get_user_model().objects
    admin = users.create_user("bench_admin", password="bench-password-not-secret")  # noqa: S106 - throw-away
    monitor = users.create_user("bench_monitor", password="bench-password-not-secret")  # noqa: S106
    services.grant_role(actor=SYSTEM, study=study, user=admin, role="study_admin")
    services.grant_role(actor=SYSTEM, study=study, user=monitor, role="monitor")
    arm = schedule.arms.get(name="patients")
    slot = EventForm.objects.select_related("event", "form").get(
        event__arm=arm, event__name="baseline", form__name="demographics"
    )
    rng = random.Random(15)  # noqa: S311 - reproducible fake data, nothing secret
    n_subjects = max(40, events // 500)
    Subject.objects.bulk_create(
        [
            Subject(
                study=study,
                site=sites[n % len(sites)],
                arm=arm,
                subject_id=f"{SITES[n % len(sites)]}-{n // len(sites) + 1:04d}",
                seq=n // len(sites) + 1,
                kind="patient",
                enrollment_date=dt.date(2024, 1, 1),
                date_shift_days=-rng.randint(30, 365),
            )
            for n in range(n_subjects)
        ],
        batch_size=2000,
    )
    FormRecord.objects.bulk_create(
        [
            FormRecord(subject_id=pk, event=slot.event, form=slot.form, form_name="demographics", data={})
            for pk in Subject.objects.filter(study=study).values_list("pk", flat=True)
        ],
        batch_size=2000,
    )
    records = list(FormRecord.objects.filter(subject__study=study).values_list("pk", "subject__subject_id"))
    key = chain_key(study)
    head = AuditChain.objects.get(key=key)
    start = time.perf_counter()
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(days=SPAN_DAYS)
    step = dt.timedelta(days=SPAN_DAYS) / events
    state = {"prev": head.last_hash}
    names = [
        "chain", "seq", "study", "actor", "actor_label", "timestamp", "action", "object_type",
        "object_id", "object_label", "before", "after", "reason", "prev_hash", "hash",
    ]  # fmt: skip

    def rows():
        for i in range(events):
            seq = head.last_seq + 1 + i
            when = (t0 + step * i).replace(microsecond=(t0 + step * i).microsecond)
            roll = rng.random()
            record_pk, sid = records[rng.randrange(len(records))]
            before = after = None
            if roll < 0.80:
                age = rng.randint(18, 90)
                action, kind, oid, label = (
                    "record.update",
                    "record",
                    str(record_pk),
                    f"{sid} / baseline / demographics #1",
                )
                before, after = {"age": age}, {"age": age + 1}
            elif roll < 0.85:
                action, kind, oid, label = (
                    "record.lock",
                    "record",
                    str(record_pk),
                    f"{sid} / baseline / demographics #1",
                )
            elif roll < 0.95:
                action, kind, oid, label = "export.run", "export", str(i), "de-identified dataset"
                after = {"rows": rng.randint(1, 5000)}
            else:
                action, kind, oid, label = "membership.grant", "membership", str(i), "someone as Monitor"
                after = {"role": "monitor"}
            actor = USERS[rng.randrange(len(USERS))]
            content = {
                "chain": key, "seq": seq, "study": study.pk, "actor": None, "actor_label": actor,
                "timestamp": when.isoformat(timespec="microseconds"), "action": action, "object_type": kind,
                "object_id": oid, "object_label": label, "before": before, "after": after, "reason": "",
                "prev_hash": state["prev"],
            }  # fmt: skip
            digest = hashlib.sha256(
                json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")
            ).hexdigest()
            prev, state["prev"] = state["prev"], digest
            yield (
                key, seq, study.pk, None, actor, connection.ops.adapt_datetimefield_value(when), action, kind,
                oid, label, None if before is None else json.dumps(before),
                None if after is None else json.dumps(after), "", prev, digest,
            )  # fmt: skip

    with transaction.atomic():
        insert_rows(AuditEvent, names, rows())
        AuditChain.objects.filter(key=key).update(last_seq=head.last_seq + events, last_hash=state["prev"])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"events": events, "subjects": n_subjects, "seed_s": round(time.perf_counter() - start, 1)}


# ----------------------------------------------------------------------------- measuring


def _client(username: str):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def _week(events_total: int) -> tuple[str, str]:
    middle = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=SPAN_DAYS // 2)
    return middle.isoformat(), (middle + dt.timedelta(days=6)).isoformat()


def _rows(response) -> int:
    return response.content.count(b'<td class="num">')  # one per event row (the seq cell)


def pages(db: str, runs: int) -> dict:
    django_setup(db)
    from django.urls import reverse

    from capture.audit.models import AuditEvent

    url = reverse("administration:audit", args=["bench"])
    total = AuditEvent.objects.filter(study__slug="bench").count()
    half = (
        AuditEvent.objects.filter(study__slug="bench")
        .order_by("seq")
        .values_list("seq", flat=True)[total // 2]
    )
    date_from, date_to = _week(total)
    admin, monitor = _client("bench_admin"), _client("bench_monitor")
    scenarios = {
        "first page": (admin, {}),
        "deep page (cursor half-way)": (admin, {"before": str(half)}),
        "user": (admin, {"user": "user03"}),
        "user + action": (admin, {"user": "user03", "action": "record.lock"}),
        "subject": (admin, {"subject": "B-0002"}),
        "site": (admin, {"site": "C"}),
        "a week (date range)": (admin, {"date_from": date_from, "date_to": date_to}),
        "first page, de-identified": (monitor, {}),
    }
    results = {}
    for name, (client, params) in scenarios.items():
        response = client.get(url, params)  # warm-up
        if response.status_code != 200 or not _rows(response):
            raise SystemExit(f"{name}: status {response.status_code}, or no rows: the scenario times nothing")
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - start) * 1000)
        q = statistics.quantiles(times, n=20, method="inclusive") if len(times) > 1 else times * 19
        results[name] = {"p50": statistics.median(times), "p95": q[18], "rows": _rows(response)}
    return {"total": total, "results": results}


def export_csv(db: str, wanted: int) -> dict:
    django_setup(db)
    from django.urls import reverse

    from capture.audit.models import AuditEvent

    total = AuditEvent.objects.filter(study__slug="bench").count()
    days = max(1, math.ceil(SPAN_DAYS * min(wanted, total) / total))
    end = dt.datetime.now(dt.UTC).date()
    params = {"date_from": (end - dt.timedelta(days=days - 1)).isoformat(), "date_to": end.isoformat()}
    client = _client("bench_admin")
    client.get(reverse("administration:audit", args=["bench"]))  # warm-up: imports, templates
    rss_before = proc_kb("VmRSS")
    start = time.perf_counter()
    response = client.get(reverse("administration:audit_csv", args=["bench"]), params)
    lines = size = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        size += len(chunk)
    seconds = time.perf_counter() - start
    return {
        "rows": lines - 1,
        "days": days,
        "seconds": round(seconds, 2),
        "mb": round(size / 1e6, 1),
        "rss_before_mb": round(rss_before / 1024),
        "peak_mb": round(proc_kb("VmHWM") / 1024),
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="audit events to seed (issue: 1000000)")
    parser.add_argument("--runs", type=int, default=0, help="requests per scenario (default 5 toy, 40 full)")
    parser.add_argument("--csv-events", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="run on a throw-away PostgreSQL cluster")
    parser.add_argument("--phase", choices=["seed", "pages", "csv"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = args.runs or (40 if args.events >= 100_000 else 5)
    if args.phase:
        phases = {
            "seed": lambda: seed(args.db, args.events),
            "pages": lambda: pages(args.db, runs),
            "csv": lambda: export_csv(args.db, args.csv_events),
        }
        print(json.dumps(phases[args.phase]()))
        return
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as work:
        stop_postgres = None
        if args.postgres:
            db, stop_postgres = start_postgres(Path(work))
        elif os.environ.get("DATABASE_URL"):
            db = os.environ["DATABASE_URL"]
            print("Using DATABASE_URL: the benchmark adds a study 'bench' there; use a throw-away database.")
        else:
            db = f"sqlite:///{work}/bench.sqlite3"
        try:
            made = child("--phase", "seed", "--db", db, "--events", str(args.events))
            print(
                f"{made['events']:,} audit events bulk-inserted (valid chain), {made['subjects']:,} subjects, "
                f"in {made['seed_s']} s; database {'PostgreSQL' if 'postgres' in db else 'SQLite'}"
            )
            measured = child("--phase", "pages", "--db", db, "--runs", str(runs))
            exported = child("--phase", "csv", "--db", db, "--csv-events", str(args.csv_events))
        finally:
            if stop_postgres:
                subprocess.run(stop_postgres, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
    print(
        f"audit page, {measured['total']:,} events in the study, {runs} requests each (target p95 < {TARGET_MS} ms)"
    )
    print(f"{'':30}{'p50 ms':>8}{'p95 ms':>8}{'rows':>6}")
    for name, r in measured["results"].items():
        flag = "" if r["p95"] < TARGET_MS else "  over target"
        print(f"{name:30}{r['p50']:8.1f}{r['p95']:8.1f}{r['rows']:6}{flag}")
    print(
        f"CSV export of {exported['rows']:,} events ({exported['days']} days, {exported['mb']} MB, streamed): "
        f"{exported['seconds']} s; RSS before {exported['rss_before_mb']} MB, peak {exported['peak_mb']} MB"
    )


if __name__ == "__main__":
    main()
