"""Benchmark of the REDCap-compatible API with PyCap (issue 6): export and import of a whole study.

    .venv/bin/python benchmarks/api_bench.py --subjects 50      # toy size (CI)
    .venv/bin/python benchmarks/api_bench.py                    # the issue's size: 10,000 subjects
    .venv/bin/python benchmarks/api_bench.py --postgres         # on a throw-away PostgreSQL cluster

Builds N subjects × 8 events × 60 items (4 forms × 15 items of mixed types, benchmarks/_data.py) in
a throw-away SQLite database (or DATABASE_URL, or --postgres: a cluster of its own on a free port), and
a study administrator with a REDCap token. Each operation then gets a fresh gunicorn (production
settings, DEBUG off, one sync worker) on 127.0.0.1 and is run with PyCap (`redcap.Project`):
export_records as JSON, as CSV, then import_records of the exported JSON rows with changed values
(every integer item + 1, every free-text item revised: each of the study's form records differs from
what is stored, so the import writes every one, a new version and an audit event each; overwriteBehavior
normal). After the import it counts the versions bumped and the audit events added, prints them, and
stops with an error unless every record was written.
Timed: the PyCap call, wall-clock (client work included), and the worker's CPU seconds
(/proc/<pid>/stat), the steadier figure on a shared machine. Peak RSS: the worker's VmHWM
(/proc/<pid>/status), beside its RSS when idle after a warm-up request, so the growth is the
request's own. It stops with an error if an answer lacks rows or the import's count is wrong.

The floor, measured in the same run on the same database: one values_list query of the study's
records merged into flat rows, then json.dumps (JSON export) or csv.writer (CSV export) of them;
for the import, json.loads of the changed payload, that one read, each record's stored values
merged with the row's, and one executemany UPDATE of every record's data and version (in a
transaction rolled back afterwards; the floor writes no audit events, the import writes one per
record). "× floor" is the endpoint's time (wall, and CPU) over the floor's.
Linux only (/proc). `--keep FILE` builds the SQLite data once and reuses it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ecrf_bench import free_port, start_postgres  # noqa: E402 - the benchmarks' shared server helpers

# One pseudonym key for the whole run: every process (the seeding one, servers, workers) must use
# the key the database was made under, or Capture refuses to run (studies/pseudonyms.py).
PSEUDONYM_KEY = os.environ.setdefault("CAPTURE_PSEUDONYM_KEY", secrets.token_hex(32))

USERNAME = "bench_admin"
OPERATIONS = ("export json", "export csv", "import json")


def django_setup(db: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    os.environ["DATABASE_URL"] = db
    import django

    django.setup()


# ----------------------------------------------------------------------------- child phases


def setup(db: str, subjects: int) -> dict:
    django_setup(db)
    from django.core.management import call_command

    from benchmarks._data import build_study

    call_command("migrate", verbosity=0)
    made = build_study(subjects, username=USERNAME, role="study_admin")
    return {"records": made["records"], "setup_s": made["setup_s"]}


def new_token(db: str) -> dict:
    django_setup(db)
    from django.contrib.auth import get_user_model

    from capture.api.tokens import create_redcap_token
    from capture.studies.models import Study

    user = get_user_model().objects.get(username=USERNAME)
    _, token = create_redcap_token(user=user, study=Study.objects.get(slug="bench"))
    return {"token": token}


def changed(rows: list[dict]) -> list[dict]:
    """The REDCap rows with every form's values changed: integer items + 1, free-text items revised.

    Each of the four forms has two integer and two free-text items (benchmarks/_data.py), always
    filled, so every form record of every row differs from what is stored."""
    from benchmarks._data import FORMS, ITEMS_PER_FORM, item_kind

    kinds = {f"i{n:02d}": item_kind(n) for n in range(1, FORMS * ITEMS_PER_FORM + 1)}
    out = []
    for row in rows:
        row = dict(row)
        for name, value in row.items():
            if value in ("", None):
                continue
            if kinds.get(name) == "integer":
                row[name] = str(int(value) + 1)
            elif kinds.get(name) == "text":
                row[name] = f"{value} (revised)"
        out.append(row)
    return out


def check(db: str) -> dict:
    """What the database holds: records, the sum of their versions, audit events of the study."""
    django_setup(db)
    from django.db.models import Sum

    from capture.audit.models import AuditEvent
    from capture.records.models import FormRecord

    records = FormRecord.objects.filter(subject__study__slug="bench")
    return {
        "records": records.count(),
        "versions": records.aggregate(total=Sum("version"))["total"] or 0,
        "updates": AuditEvent.objects.filter(study__slug="bench", action="record.update").count(),
        "events": AuditEvent.objects.filter(study__slug="bench").count(),
    }


def import_floor(payload: str) -> tuple[float, float]:
    """Parse the changed rows, read the records, merge, one executemany UPDATE; rolled back."""
    from django.db import connection, transaction

    from capture.records.models import FormRecord

    table = connection.ops.quote_name(FormRecord._meta.db_table)
    value = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    update = f"UPDATE {table} SET data = {value}, version = version + 1 WHERE id = %s"  # noqa: S608 - our own table name
    start, cpu = time.perf_counter(), time.process_time()
    with transaction.atomic():
        rows = {(r["record_id"], r["redcap_event_name"]): r for r in json.loads(payload)}
        query = FormRecord.objects.filter(subject__study__slug="bench").values_list(
            "pk", "subject__subject_id", "event__name", "data"
        )
        writes = []
        for pk, subject_id, event, data in query.iterator(chunk_size=2000):
            row = rows[subject_id, f"{event}_arm_1"]
            new = {name: row.get(name, v) for name, v in data.items()}
            if new != data:
                writes.append((json.dumps(new), pk))
        with connection.cursor() as cursor:
            cursor.executemany(update, writes)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        transaction.set_rollback(True)  # a floor, not a write: the import runs on the same data
    return seconds, cpu_s


def floor(db: str) -> dict:
    """The bare cost: one query, flat rows, the json / csv modules; for the import, parsing the
    changed payload, reading and merging, and a bare UPDATE of every record."""
    django_setup(db)
    from capture.records.models import FormRecord

    start, cpu = time.perf_counter(), time.process_time()
    rows: dict[tuple, dict] = {}
    query = (
        FormRecord.objects.filter(subject__study__slug="bench")
        .order_by("subject__subject_id", "event__order", "form_name")
        .values_list("subject__subject_id", "event__name", "form_name", "status", "data")
    )
    for subject_id, event, form_name, status, data in query.iterator(chunk_size=2000):
        row = rows.setdefault(
            (subject_id, event), {"record_id": subject_id, "redcap_event_name": f"{event}_arm_1"}
        )
        row.update(data)
        row[f"{form_name}_complete"] = status
    flat = list(rows.values())
    read = (time.perf_counter() - start, time.process_time() - cpu)

    def timed(work) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - start, time.process_time() - cpu

    dump = timed(lambda: json.dumps(flat))
    imported = import_floor(json.dumps(changed(flat)))

    def write_csv() -> None:
        writer = csv.DictWriter(
            io.StringIO(), fieldnames=list(flat[0]) if flat else [], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(flat)

    written = timed(write_csv)
    out: dict = {"rows": len(flat)}
    for operation, (seconds, cpu_s) in (
        ("export json", (read[0] + dump[0], read[1] + dump[1])),
        ("export csv", (read[0] + written[0], read[1] + written[1])),
        ("import json", imported),
    ):
        out[operation] = {"seconds": round(seconds, 3), "cpu_s": round(cpu_s, 3)}
    return out


def child(*args: str) -> dict:
    # Re-runs this very script with arguments it made itself: no outside input reaches the command.
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the server


def proc_kb(pid: int, key: str) -> int:
    """VmHWM (peak RSS) or VmRSS of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class Server:
    """gunicorn capture.wsgi with production settings (DEBUG off), one sync worker, on 127.0.0.1."""

    def __init__(self, db: str, work: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/redcap/api/"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "capture.settings.production",
            "DATABASE_URL": db,
            "CAPTURE_SECRET_KEY": secrets.token_hex(32),
            "CAPTURE_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "CAPTURE_ALLOWED_HOSTS": "127.0.0.1",
            "CAPTURE_SSL_REDIRECT": "false",
            # One import call carries the whole study (~200 MB at 10,000 subjects): above the
            # endpoint's 64 MB default, which guards a production server against a huge body.
            "CAPTURE_REDCAP_MAX_BODY_BYTES": str(2**31),
        }
        self.log = open(Path(work) / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        # A long timeout: gunicorn's default (30 s) would kill a full-size import mid-request.
        command = [str(Path(sys.executable).parent / "gunicorn"), "capture.wsgi:application"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "3600"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=self.log)  # noqa: S603 - our own command
        self.worker = 0

    def wait(self, token: str) -> None:
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn stopped; see {self.log.name}")
            try:
                answer = requests.post(self.url, data={"token": token, "content": "version"}, timeout=30)
                if answer.ok:
                    workers = children(self.process.pid)
                    self.worker = workers[0] if workers else 0
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or still loading Django on a busy machine
            time.sleep(0.2)
        sys.exit(f"gunicorn did not answer in 120 s; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a worker still busy with a request the client gave up on
            self.process.kill()
            self.process.wait()
            for worker in children(self.process.pid) or [self.worker]:
                if worker and Path(f"/proc/{worker}").exists():
                    os.kill(worker, 9)
        self.log.close()


def run(db: str, work: str, token: str, operation: str, rows: list | None) -> tuple[dict, list | None]:
    from redcap import Project
    from redcap import request as redcap_request

    server = Server(db, work)
    try:
        server.wait(token)
        project = Project(server.url, token)
        project.export_version()  # warm-up: Django's URLconf, the token path and PyCap's session
        idle_kb = proc_kb(server.worker, "VmRSS")
        start, cpu = time.perf_counter(), cpu_seconds(server.worker)
        if operation == "export json":
            result = project.export_records()
            count = len(result)
        elif operation == "export csv":
            text = project.export_records(format_type="csv")
            count = text.count("\n") - 1  # no value here spans lines
            result = None
        else:
            answer = project.import_records(rows, overwrite="normal")
            count, result = len(rows or []), None
            if answer.get("count") != len({r["record_id"] for r in rows or []}):
                sys.exit(f"import answered {answer}")
        seconds, cpu = time.perf_counter() - start, cpu_seconds(server.worker) - cpu
        peak_kb = proc_kb(server.worker, "VmHWM")
    finally:
        redcap_request._session.close()
        server.stop()
    measured = {
        "seconds": seconds,
        "cpu_s": cpu,
        "rows": count,
        "idle_mb": idle_kb / 1024,
        "peak_mb": peak_kb / 1024,
    }
    return measured, result


# ----------------------------------------------------------------------------- PostgreSQL


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10000)
    parser.add_argument("--postgres", action="store_true", help="run on a throw-away PostgreSQL cluster")
    parser.add_argument("--keep", metavar="SQLITE_FILE", help="build the data once in this file and reuse it")
    parser.add_argument("--phase", choices=["setup", "token", "floor", "check"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phases = {"setup": lambda: setup(args.db, args.subjects), "token": lambda: new_token(args.db)}
        phases["floor"] = lambda: floor(args.db)
        phases["check"] = lambda: check(args.db)
        print(json.dumps(phases[args.phase]()))
        return
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"  # PyCap's requests must not go through a proxy
    with tempfile.TemporaryDirectory(prefix="api-bench-") as work:
        stop_postgres = None
        if args.postgres:
            db, stop_postgres = start_postgres(Path(work))
        elif os.environ.get("DATABASE_URL"):
            db = os.environ["DATABASE_URL"]
            print("Using DATABASE_URL: the benchmark adds a study 'bench' there; use a throw-away database.")
        else:
            db = f"sqlite:///{args.keep or f'{work}/bench.sqlite3'}"
        try:
            if args.keep and Path(args.keep).exists():
                made = {"records": "(kept)", "setup_s": 0}
            else:
                made = child("--phase", "setup", "--db", db, "--subjects", str(args.subjects))
            token = child("--phase", "token", "--db", db)["token"]
            base = child("--phase", "floor", "--db", db)
            print(
                f"{args.subjects} subjects × 8 events × 60 items: {made['records']} form records, "
                f"{base['rows']} REDCap rows (setup {made['setup_s']} s); "
                f"database {'PostgreSQL' if 'postgres' in db else 'SQLite'}"
            )
            results, rows = {}, None
            for operation in OPERATIONS:
                if operation == "import json":
                    before = child("--phase", "check", "--db", db)
                results[operation], out = run(db, work, token, operation, rows)
                rows = changed(out) if out is not None else rows
                if results[operation]["rows"] != base["rows"]:
                    sys.exit(f"{operation}: {results[operation]['rows']} rows, the study has {base['rows']}")
            after = child("--phase", "check", "--db", db)
        finally:
            if stop_postgres:
                subprocess.run(stop_postgres, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
    bumped = after["versions"] - before["versions"]
    updates, events = after["updates"] - before["updates"], after["events"] - before["events"]
    print(
        f"import wrote {bumped} of {after['records']} form records (versions bumped by one each), "
        f"{updates} record.update audit events added ({events} audit events in all)"
    )
    if not bumped == updates == after["records"]:
        sys.exit("the import did not write every record: the benchmark would time a no-op")
    print(
        f"{'':13}{'seconds':>9}{'rows':>8}{'rows/s':>9}{'idle RSS MB':>13}{'peak RSS MB':>13}"
        f"{'floor s':>9}{'× floor':>9}{'server cpu s':>14}{'floor cpu s':>13}{'× floor cpu':>13}"
    )
    for operation in OPERATIONS:
        r, f = results[operation], base[operation]
        print(
            f"{operation:13}{r['seconds']:>9.2f}{r['rows']:>8}{r['rows'] / r['seconds']:>9.0f}"
            f"{r['idle_mb']:>13.0f}{r['peak_mb']:>13.0f}{f['seconds']:>9.2f}"
            f"{r['seconds'] / max(f['seconds'], 1e-3):>9.1f}{r['cpu_s']:>14.2f}{f['cpu_s']:>13.2f}"
            f"{r['cpu_s'] / max(f['cpu_s'], 1e-2):>13.1f}"
        )
    print(
        "Seconds: the PyCap call, wall-clock (client parsing included). Server CPU: the gunicorn worker's, "
        "the steadier figure on a shared machine. Peak RSS: the worker's VmHWM; idle: its RSS after a "
        "warm-up request. Floor: one values_list read + the json / csv module (export); json.loads + the "
        "read + a merge + one executemany UPDATE of every record, no audit (import)."
    )


if __name__ == "__main__":
    main()
