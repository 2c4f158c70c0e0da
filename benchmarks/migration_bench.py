"""REDCap project migration benchmark (issue 13).

    .venv/bin/python benchmarks/migration_bench.py                  # toy size: 50 records
    .venv/bin/python benchmarks/migration_bench.py --records 10000  # the issue's size
    .venv/bin/python benchmarks/migration_bench.py --records 10000 --postgres   # a throw-away cluster

Generates a REDCap project as REDCap exports it: a data dictionary (API column names) of 3
instruments × 20 fields (text, integer, number, date_ymd, dropdown, radio, checkbox) plus the record
id, one arm of 3 events, the instrument-event mapping, a repeating-instruments file (`lab` repeats:
1 to 3 instances for about 30 % of the record-events) and the flat raw records CSV of N records. Then,
each in its own process so its peak RSS is its own:

  Capture     `manage.py import_redcap_project` end to end (read, convert, create the study, enrol,
              validate every cell, write and audit every record, one transaction)
  reference   on a fresh database of the same kind, migrated the same: csv.DictReader parse of the
              same dictionary and records CSV, each row split into FormRecord-shaped rows
              (record, event, form, instance, status, the values as JSON), one bare executemany
              (SQLite) / COPY (PostgreSQL) of them: no validation, no audit

The two sides run in turn, --repeat times each (3 unless told), every run on a fresh copy of its
side's migrated database: a SQLite file per run in a temporary folder, or with --postgres a database
per run (made from a migrated template) in a PostgreSQL cluster of its own; DATABASE_URL is not used.
On a shared machine a run is slowed by whatever else runs, never sped up, so the best run of each
side counts (as timeit takes the best of its repeats); each run's own ratio (its two sides run
one after the other, in much the same state of the machine) is printed too, and their median. It prints
records, rows written, seconds (wall and this process's CPU), the ratio Capture / reference (target
≤ 3) and Capture's peak RSS (target < 1 GB). It counts the records Capture stored after each run,
and fails unless they are the records the generator made and the reference wrote.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import shutil
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
from import_bench import _clock, _since  # noqa: E402 - wall and CPU seconds, as the import benchmark counts them

INSTRUMENTS = ("demographics", "visit", "lab")  # lab repeats
FIELDS_PER_INSTRUMENT = 20
KINDS = ("text", "integer", "number", "date_ymd", "dropdown", "radio", "checkbox")
CHOICES = {
    "dropdown": [("1", "Never"), ("2", "Former"), ("3", "Current")],
    "radio": [("0", "No"), ("1", "Yes"), ("9", "Unknown")],
    "checkbox": [("a", "Alpha"), ("b", "Beta"), ("c", "Gamma"), ("d", "Delta")],
}
EVENTS = ("baseline_arm_1", "month_6_arm_1", "month_12_arm_1")
FORMS_AT = {
    "baseline_arm_1": INSTRUMENTS,
    "month_6_arm_1": ("visit", "lab"),
    "month_12_arm_1": ("visit", "lab"),
}
USER = "bench_migrator"
SLUG = "redcapbench"
ROW_KEYS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


# ----------------------------------------------------------------------------- the project's files


def fields() -> list[tuple[str, str, str]]:
    """(field, instrument, kind) of the dictionary, record id first."""
    out = [("record_id", "demographics", "text")]
    for instrument in INSTRUMENTS:
        for k in range(FIELDS_PER_INSTRUMENT):
            kind = KINDS[k % len(KINDS)]
            out.append((f"{instrument[:3]}_{k:02d}", instrument, kind))
    return out


def _csv(rows: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def dictionary() -> bytes:
    header = [
        "field_name",
        "form_name",
        "section_header",
        "field_type",
        "field_label",
        "select_choices_or_calculations",
        "field_note",
        "text_validation_type_or_show_slider_number",
        "text_validation_min",
        "text_validation_max",
        "identifier",
        "branching_logic",
        "required_field",
        "custom_alignment",
        "question_number",
        "matrix_group_name",
        "matrix_ranking",
        "field_annotation",
    ]
    rows = [header]
    for name, instrument, kind in fields():
        field_type = kind if kind in CHOICES else "text"
        choices = " | ".join(f"{code}, {label}" for code, label in CHOICES.get(kind, []))
        validation = kind if kind in ("integer", "number", "date_ymd") else ""
        label = "Record ID" if name == "record_id" else f"{kind} question {name}"
        rows.append([name, instrument, "", field_type, label, choices, "", validation] + [""] * 10)
    return _csv(rows)


def schedule_files() -> dict[str, bytes]:
    return {
        "arms.csv": _csv([["arm_num", "name"], ["1", "Patients"]]),
        "events.csv": _csv(
            [["event_name", "arm_num", "unique_event_name", "custom_event_label", "event_id"]]
            + [
                [e.removesuffix("_arm_1").replace("_", " ").title(), "1", e, "", str(100 + n)]
                for n, e in enumerate(EVENTS)
            ]
        ),
        "mapping.csv": _csv(
            [["arm_num", "unique_event_name", "form"]] + [["1", e, f] for e in EVENTS for f in FORMS_AT[e]]
        ),
        "repeating.csv": _csv(
            [["event_name", "form_name", "custom_form_label"]] + [[e, "lab", ""] for e in EVENTS]
        ),
    }


def columns() -> list[str]:
    """The flat raw export's header: row keys, then each instrument's fields (checkboxes expanded)
    and its `_complete`."""
    out = list(ROW_KEYS)
    for instrument in INSTRUMENTS:
        for name, of, kind in fields():
            if of != instrument or name == "record_id":
                continue
            out += [f"{name}___{code}" for code, _ in CHOICES["checkbox"]] if kind == "checkbox" else [name]
        out.append(f"{instrument}_complete")
    return out


def _value(kind: str, rng: random.Random) -> str:
    if kind == "integer":
        return str(rng.randint(0, 500))
    if kind == "number":
        return f"{rng.uniform(0, 300):.1f}"
    if kind == "date_ymd":
        return f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind in ("dropdown", "radio"):
        return rng.choice(CHOICES[kind])[0]
    return (
        rng.choice(["stable", "progressing, slowly", 'said "better"', "résolu"]) + f" {rng.randint(1, 999)}"
    )


def _fill(row: dict, instrument: str, rng: random.Random) -> None:
    for name, of, kind in fields():
        if of != instrument or name == "record_id":
            continue
        if kind == "checkbox":
            for code, _ in CHOICES["checkbox"]:
                row[f"{name}___{code}"] = "1" if rng.random() < 0.3 else "0"
        elif rng.random() >= 0.05:  # 5 % left blank
            row[name] = _value(kind, rng)
    row[f"{instrument}_complete"] = rng.choice("0122")


def records_csv(n: int) -> tuple[bytes, int]:
    """The flat raw records CSV of `n` records and the number of form records it holds."""
    rng = random.Random(13)  # noqa: S311 - benchmark data, nothing secret
    header = columns()
    out = io.StringIO()
    writer = csv.DictWriter(out, header, restval="", lineterminator="\n")
    writer.writeheader()
    forms = 0
    for r in range(1, n + 1):
        for event in EVENTS:
            row = {"record_id": str(r), "redcap_event_name": event}
            for instrument in FORMS_AT[event]:
                if instrument != "lab":
                    _fill(row, instrument, rng)
                    forms += 1
            writer.writerow(row)
            if rng.random() < 0.3:
                for instance in range(1, rng.randint(1, 3) + 1):
                    row = {
                        "record_id": str(r),
                        "redcap_event_name": event,
                        "redcap_repeat_instrument": "lab",
                        "redcap_repeat_instance": str(instance),
                    }
                    _fill(row, "lab", rng)
                    writer.writerow(row)
                    forms += 1
    return out.getvalue().encode(), forms


def generate(folder: Path, n: int) -> dict:
    files = {"dictionary.csv": dictionary(), **schedule_files()}
    data, forms = records_csv(n)
    files["records.csv"] = data
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {"files": [str(folder / name) for name in files], "forms": forms, "mb": len(data) / 1e6}


# ----------------------------------------------------------------------------- phases (child processes)


def django_setup(db: str) -> None:
    os.environ["DATABASE_URL"] = db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    import django

    django.setup()


def phase_setup(db: str) -> dict:
    """Migrate the database; on Capture's side, the staff user who migrates the project."""
    django_setup(db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    get_user_model().objects.create_user(USER, password="bench-password-not-secret", is_staff=True)  # noqa: S106 - throw-away
    return {}


def phase_capture(db: str, files: list[str]) -> dict:
    django_setup(db)
    from django.core.management import call_command, get_commands, load_command_class

    from capture.audit.models import AuditEvent
    from capture.records.models import FormRecord
    from capture.studies.models import Subject

    # Loading the command's modules is start-up, as django.setup() is (0.35 s): done before the clock.
    load_command_class(get_commands()["import_redcap_project"], "import_redcap_project")
    out = io.StringIO()
    started = _clock()
    call_command("import_redcap_project", *files, study=SLUG, user=USER, stdout=out)
    done = _since(started)
    return {
        "records": FormRecord.objects.filter(subject__study__slug=SLUG).count(),
        "subjects": Subject.objects.filter(study__slug=SLUG).count(),
        "audit_events": AuditEvent.objects.filter(study__slug=SLUG).count(),
        "report": out.getvalue().strip().splitlines()[-1],
        **done,
    }


def phase_reference(db: str, files: list[str]) -> dict:
    """Parse the dictionary and records CSV, split rows into per-form rows, one bare insert."""
    by_name = {Path(f).name: f for f in files}
    started = _clock()
    form_of: dict[str, str] = {}
    with open(by_name["dictionary.csv"], newline="", encoding="utf-8") as f:
        for d in csv.DictReader(f):
            form_of[d["field_name"]] = d["form_name"]
    payload = []
    with open(by_name["records.csv"], newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            repeat = row["redcap_repeat_instrument"]
            per_form: dict[str, dict] = {}
            for key, value in row.items():
                if key in ROW_KEYS or value in ("", "0") and "___" in key or value == "":
                    continue
                name, _, code = key.partition("___")
                form = key.removesuffix("_complete") if key.endswith("_complete") else form_of[name]
                values = per_form.setdefault(form, {})
                if code:
                    values.setdefault(name, []).append(code)
                else:
                    values[key] = value
            for form, values in per_form.items():
                if (
                    repeat
                    and form != repeat
                    or set(values) == {f"{form}_complete"}
                    and values[f"{form}_complete"] == "0"
                ):
                    continue
                status = int(values.pop(f"{form}_complete", "0"))
                instance = int(row["redcap_repeat_instance"] or 1)
                payload.append(
                    (row["record_id"], row["redcap_event_name"], form, instance, status, json.dumps(values))
                )
    parsed = _since(started)
    if db.startswith("postgres"):
        import psycopg

        with psycopg.connect(db.replace("postgres://", "postgresql://", 1)) as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE bench_bare (record text, event text, form text, instance int, status int, data jsonb)"
            )
            with cur.copy("COPY bench_bare FROM STDIN") as copy:
                for row in payload:
                    copy.write_row(row)
    else:
        import sqlite3

        conn = sqlite3.connect(db.removeprefix("sqlite:///"))
        conn.execute(
            "CREATE TABLE bench_bare (record text, event text, form text, instance int, status int, data text)"
        )
        conn.executemany("INSERT INTO bench_bare VALUES (?, ?, ?, ?, ?, ?)", payload)
        conn.commit()
        conn.close()
    return {"records": len(payload), "parse_seconds": parsed["work_seconds"], **_since(started)}


def run_phase(args) -> None:
    started = time.perf_counter()
    files = args.files.split(",") if args.files else []
    phases = {
        "setup": lambda: phase_setup(args.db),
        "capture": lambda: phase_capture(args.db, files),
        "reference": lambda: phase_reference(args.db, files),
    }
    out = phases[args.phase]()
    out["seconds"] = time.perf_counter() - started  # the whole process, Django start-up included
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


def child(*args: str) -> dict:
    # Re-runs this very script with arguments it made itself: no outside input reaches the command.
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"{' '.join(args[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50, help="REDCap records (issue: 10000)")
    parser.add_argument("--postgres", action="store_true", help="run on a throw-away PostgreSQL cluster")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each side, alternating (best of them counts)"
    )
    parser.add_argument("--phase", choices=["setup", "capture", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    with tempfile.TemporaryDirectory(prefix="migration-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        made = generate(work, args.records)
        print(
            f"generated a REDCap project: {len(INSTRUMENTS)} instruments × {FIELDS_PER_INSTRUMENT} fields, "
            f"{len(EVENTS)} events, lab repeating; {args.records:,} records, {made['forms']:,} form records, "
            f"records CSV {made['mb']:.1f} MB, in {time.perf_counter() - t:.1f} s"
        )
        fresh, stop_postgres = _databases(work, args.postgres)
        files = ",".join(made["files"])
        runs: list[tuple[dict, dict]] = []
        try:
            t = time.perf_counter()
            child("--phase", "setup", "--db", fresh("capture", 0))
            child("--phase", "setup", "--db", fresh("reference", 0))
            print(f"migrated two fresh databases in {time.perf_counter() - t:.1f} s (not measured)")
            for run in range(1, args.repeat + 1):
                capture = child("--phase", "capture", "--db", fresh("capture", run), "--files", files)
                reference = child("--phase", "reference", "--db", fresh("reference", run), "--files", files)
                runs.append((capture, reference))
                print(
                    f"run {run}: Capture {capture['cpu_seconds']:.2f} s CPU, reference {reference['cpu_seconds']:.2f} s: "
                    f"{capture['cpu_seconds'] / reference['cpu_seconds']:.2f} ×"
                )
        finally:
            if stop_postgres:
                subprocess.run(stop_postgres, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
    report(args.records, made["forms"], runs, "PostgreSQL" if args.postgres else "SQLite")


def _databases(work: Path, postgres: bool):
    """(fresh(side, run) -> a database URL, the command that stops PostgreSQL or None). Run 0 of a side
    is migrated once; each measured run gets a copy of it (a file copy; on PostgreSQL a database
    made from it as a template), so every run starts from the same fresh database."""
    if not postgres:

        def fresh_file(side: str, run: int) -> str:
            path = work / f"{side}-{run}.sqlite3"
            if run:
                shutil.copyfile(work / f"{side}-0.sqlite3", path)
            return f"sqlite:///{path}"

        return fresh_file, None
    url, stop_postgres = start_postgres(work)
    import psycopg

    server = url.replace("postgres://", "postgresql://", 1)

    def fresh_database(side: str, run: int) -> str:
        name = f"bench_{side}_{run}"
        template = f" TEMPLATE bench_{side}_0" if run else ""
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{template}")  # names made here
        return url.rsplit("/", 1)[0] + "/" + name

    return fresh_database, stop_postgres


def report(n: int, forms: int, runs: list[tuple[dict, dict]], backend: str) -> None:
    """The best run of each side (noise on a shared machine only ever adds time), and their ratio."""
    capture = min((c for c, _ in runs), key=lambda r: r["cpu_seconds"])
    reference = min((r for _, r in runs), key=lambda r: r["cpu_seconds"])
    print(
        f"\n{n:,} REDCap records × {len(EVENTS)} events on {backend}; Capture's report: {capture['report']}"
    )
    print(
        f"seconds: the work itself (Django start-up is not part of it), the best of {len(runs)} alternating "
        "runs of each side; CPU: this process only"
        + (", not the PostgreSQL server's" if backend == "PostgreSQL" else "")
    )
    print(f"{'':28}{'records':>9}{'seconds':>9}{'CPU s':>8}{'records/s':>11}{'peak RSS MB':>13}")
    for name, r in (("Capture import_redcap_project", capture), ("reference parse + insert", reference)):
        print(
            f"{name:28}{r['records']:9,}{r['work_seconds']:9.2f}{r['cpu_seconds']:8.2f}"
            f"{r['records'] / r['work_seconds']:11,.0f}{r['peak_rss_mb']:13.0f}"
        )
    print(
        f"Capture also enrolled {capture['subjects']:,} subjects and wrote {capture['audit_events']:,} audit events; "
        f"the reference's parse alone took {reference['parse_seconds']:.2f} s"
    )
    for c, r in runs:
        if not c["records"] == r["records"] == forms or c["subjects"] != n:
            raise SystemExit(
                f"the sides did not write what the project holds: {forms} form records and {n} subjects made, "
                f"Capture stored {c['records']} records of {c['subjects']} subjects, the reference {r['records']}"
            )
    for what in ("work_seconds", "cpu_seconds"):
        best_capture = min(c[what] for c, _ in runs)
        best_reference = min(r[what] for _, r in runs)
        paired = statistics.median(c[what] / r[what] for c, r in runs)
        print(
            f"Capture / reference = {best_capture / best_reference:.2f} by {what.split('_')[0]} time, best runs "
            f"(median of the runs' own ratios {paired:.2f})  (target ≤ 3)"
        )
    peak = max(c["peak_rss_mb"] for c, _ in runs)
    print(f"peak RSS of Capture's import = {peak:.0f} MB  (target < 1024)")


if __name__ == "__main__":
    main()
