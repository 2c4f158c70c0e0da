"""Benchmark of the linked dataset export (issue 5).

    .venv/bin/python benchmarks/export_bench.py                    # toy size (CI): 200 subjects
    .venv/bin/python benchmarks/export_bench.py --subjects 10000   # the issue's size

Builds a throw-away SQLite database (or uses DATABASE_URL) with N subjects × 8 events × 60
items (4 forms of 15 items per event: integers, decimals, dates, coded values, free text,
yes/no) plus 2 imaging studies per subject, then exports
it wide as a statistician to CSV and to Parquet, each in a fresh process so peak RSS is that
export's own. The floor is pandas writing the same final frame (read back from the Parquet
export) to CSV and Parquet in the same run; it holds the whole frame in memory, so it skips
everything an export must do. The honest floor for Parquet is what the least a program could
do to make the same file costs: one SELECT of the same records' JSON from the same database,
decoded with orjson, plus pyarrow building and writing the same table from Python columns.
Targets (the issue): Parquet export ≤ 2 × the honest floor, peak RSS < 1.5 GB. CPU seconds are printed beside wall-clock ones: on a shared machine they
are the steadier comparison. `--keep FILE` builds the SQLite data once and reuses it.

Setup writes records with bulk_create, not the record service: it is benchmark data in a
database made for the run, never a study's data.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 8
FORMS = 4
ITEMS_PER_FORM = 15
KINDS = ["integer", "decimal", "date", "code", "text", "boolean"]


def django_setup(db: str | None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    if db:
        os.environ["DATABASE_URL"] = db
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def definitions(folder: Path) -> None:
    elements, forms = [], []
    for f in range(1, FORMS + 1):
        items = []
        for i in range(1, ITEMS_PER_FORM + 1):
            n = (f - 1) * ITEMS_PER_FORM + i
            kind = KINDS[n % len(KINDS)]
            element = {
                "public_id": f"capture.bench_{n:02d}",
                "version": "1.0",
                "name": f"i{n:02d}",
                "long_name": f"Bench item {n}",
                "question": f"Benchmark item {n}",
                "datatype": "text" if kind in ("code",) else kind,
            }
            if kind == "code":
                element["permissible_values"] = [
                    {"code": c, "meaning": c.title()} for c in ("alpha", "beta", "gamma")
                ]
            if kind == "decimal":
                element["decimal_places"] = 1
            elements.append(element)
            items.append({"element": f"capture.bench_{n:02d}@1.0"})
        forms.append(
            {
                "form": f"bench_f{f}",
                "version": "1.0",
                "title": f"Bench form {f}",
                "sections": [{"title": "S", "items": items}],
            }
        )
    import yaml

    (folder / "elements.yaml").write_text(yaml.safe_dump({"elements": elements}))
    for form in forms:
        (folder / f"{form['form']}.yaml").write_text(yaml.safe_dump(form))
    events = [
        {
            "name": f"e{e}",
            "title": f"Event {e}",
            "day": 28 * (e - 1),
            "forms": [f"bench_f{f}@1.0" for f in range(1, FORMS + 1)],
        }
        for e in range(1, EVENTS + 1)
    ]
    schedule = {
        "schedule": "bench",
        "version": "1.0",
        "title": "Bench",
        "arms": [{"name": "patients", "title": "P", "events": events}],
    }
    (folder / "schedule.yaml").write_text(yaml.safe_dump(schedule))


def value(kind: str, rng: random.Random, day: int):
    if kind == "integer":
        return rng.randint(0, 1000)
    if kind == "decimal":
        return round(rng.uniform(0, 200), 1)
    if kind == "date":
        return f"2025-{1 + day % 12:02d}-{1 + rng.randint(0, 27):02d}"
    if kind == "code":
        return rng.choice(["alpha", "beta", "gamma"])
    if kind == "boolean":
        return rng.choice(["0", "1"])
    return rng.choice(["stable", "progressing", "resolved", "not assessed"]) + f" {rng.randint(1, 99)}"


def setup(db: str | None, subjects: int) -> dict:
    django_setup(db)
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import EventForm, Schedule
    from capture.imaging.models import ImagingStudy
    from capture.records.models import FormRecord
    from capture.studies import services
    from capture.studies.models import Subject

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as folder:
        definitions(Path(folder))
        load_definitions([Path(folder)], actor=SYSTEM)
    schedule = Schedule.objects.get(name="bench")
    user = get_user_model().objects.create_user("bench_statistician", password="bench-password-not-secret")  # noqa: S106 - a throw-away benchmark user
    study = services.create_study(actor=SYSTEM, slug="bench", name="Bench", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="S", name="Site")
    services.grant_role(actor=SYSTEM, study=study, user=user, role="statistician")
    arm = schedule.arms.get()
    rng = random.Random(5)  # noqa: S311 - reproducible fake data, nothing secret
    start = time.perf_counter()
    Subject.objects.bulk_create(
        [
            Subject(
                study=study,
                site=site,
                arm=arm,
                subject_id=f"S-{n:05d}",
                seq=n,
                kind="patient",
                enrollment_date=dt.date(2025, 1, 1) + dt.timedelta(days=n % 300),
                date_shift_days=-rng.randint(30, 365),
            )
            for n in range(1, subjects + 1)
        ],
        batch_size=2000,
    )
    slots = list(EventForm.objects.filter(event__arm=arm).select_related("form", "event"))
    kinds = {f"i{n:02d}": KINDS[n % len(KINDS)] for n in range(1, FORMS * ITEMS_PER_FORM + 1)}
    batch = []
    for subject_pk in Subject.objects.filter(study=study).values_list("pk", flat=True):
        for ef in slots:
            data = {item["name"]: value(kinds[item["name"]], rng, ef.event.day) for item in ef.form.items()}
            batch.append(
                FormRecord(
                    subject_id=subject_pk,
                    event=ef.event,
                    form=ef.form,
                    form_name=ef.form.name,
                    instance=1,
                    status=2,
                    data=data,
                )
            )
        if len(batch) >= 5000:
            FormRecord.objects.bulk_create(batch)
            batch = []
    FormRecord.objects.bulk_create(batch)
    studies = []
    for subject in Subject.objects.filter(study=study).only("pk", "enrollment_date", "date_shift_days"):
        for k, modalities in enumerate(["CT", "CT,PT"]):
            studies.append(
                ImagingStudy(
                    study=study,
                    subject=subject,
                    study_uid=f"2.25.{subject.pk}{k}",
                    modalities=modalities,
                    study_date=subject.enrollment_date + dt.timedelta(days=subject.date_shift_days + 56 * k),
                    source_kind="folder",
                    source="bench",
                )
            )
    ImagingStudy.objects.bulk_create(studies, batch_size=5000)
    imaging = len(studies)
    return {
        "setup_s": round(time.perf_counter() - start, 1),
        "records": FormRecord.objects.count(),
        "imaging_studies": imaging,
    }


def export(db: str | None, fmt: str, out: str) -> dict:
    django_setup(db)
    from django.contrib.auth import get_user_model

    from capture.exports.services import export_dataset
    from capture.exports.spec import ExportSpec
    from capture.studies.models import Study

    user = get_user_model().objects.get(username="bench_statistician")
    study = Study.objects.get(slug="bench")
    if fmt == "parquet":
        warm_pyarrow()
    start, cpu = time.perf_counter(), time.process_time()
    result = export_dataset(actor=user, study=study, spec=ExportSpec(formats=[fmt]), output_dir=Path(out))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = result.manifest["tables"][0]["rows"]
    return {
        "format": fmt,
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "rows": rows,
        "columns": result.manifest["tables"][0]["columns"],
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(peak_rss_mb()),
        "zip": str(result.path),
    }


def floor(parquet_zip: str, out: str) -> dict:
    import pandas as pd

    folder = Path(out)
    with zipfile.ZipFile(parquet_zip) as bundle:
        bundle.extract("dataset.parquet", folder)
    frame = pd.read_parquet(folder / "dataset.parquet")
    out = {}
    for fmt, write in (
        ("csv", lambda: frame.to_csv(folder / "floor.csv", index=False)),
        ("parquet", lambda: frame.to_parquet(folder / "floor.parquet", compression="zstd")),
    ):
        start, cpu = time.perf_counter(), time.process_time()
        write()
        out[f"{fmt}_s"] = round(time.perf_counter() - start, 2)
        out[f"{fmt}_cpu_s"] = round(time.process_time() - cpu, 2)
    return {**out, "peak_rss_mb": round(peak_rss_mb())}


def warm_pyarrow() -> None:
    """pyarrow imports pandas on its first conversion (0.3–0.4 CPU s), once per process: a worker
    pays it at its first export. Paid before the clock starts, by the export and the floor alike."""
    import pyarrow as pa

    pa.array([0])


def sql_floor(db: str | None, parquet_zip: str, out: str) -> dict:
    """The honest floor: a bare SQL read of the same records, and the pyarrow write of the same table."""
    django_setup(db)
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq
    from django.db import connection
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from capture.records.models import FormRecord
    from capture.studies.models import Study

    study = Study.objects.get(slug="bench")
    query = (
        FormRecord.objects.filter(subject__study=study)
        .order_by()
        .annotate(raw=Cast("data", TextField()))
        .values_list("subject_id", "event_id", "form_name", "instance", "status", "raw")
    )
    sql, params = query.query.sql_with_params()
    start, cpu = time.perf_counter(), time.process_time()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        records = [(*row[:5], orjson.loads(row[5])) for row in cursor.fetchall()]
    read = {"read_s": time.perf_counter() - start, "read_cpu_s": time.process_time() - cpu}
    folder = Path(out)
    with zipfile.ZipFile(parquet_zip) as bundle:
        bundle.extract("dataset.parquet", folder)
    exported = pq.read_table(folder / "dataset.parquet")
    columns, schema = exported.to_pydict(), exported.schema  # the same cells, as Python values
    warm_pyarrow()
    start, cpu = time.perf_counter(), time.process_time()
    pq.write_table(
        pa.Table.from_pydict(columns, schema=schema), folder / "sql_floor.parquet", compression="zstd"
    )
    write = {"write_s": time.perf_counter() - start, "write_cpu_s": time.process_time() - cpu}
    result = {k: round(v, 2) for k, v in {**read, **write}.items()}
    return {**result, "records": len(records), "peak_rss_mb": round(peak_rss_mb())}


def child(*args: str) -> dict:
    # Re-runs this very script with arguments it made itself: no outside input reaches the command.
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--keep", metavar="SQLITE_FILE", help="build the data once in this file and reuse it")
    parser.add_argument("--phase", choices=["setup", "export", "floor", "sql_floor"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--zip", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "setup":
        print(json.dumps(setup(args.db, args.subjects)))
        return
    if args.phase == "export":
        print(json.dumps(export(args.db, args.format, args.out)))
        return
    if args.phase == "floor":
        print(json.dumps(floor(args.zip, args.out)))
        return
    if args.phase == "sql_floor":
        print(json.dumps(sql_floor(args.db, args.zip, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="export-bench-") as work:
        db = os.environ.get("DATABASE_URL") or f"sqlite:///{args.keep or f'{work}/bench.sqlite3'}"
        if os.environ.get("DATABASE_URL"):
            print("Using DATABASE_URL: the benchmark adds a study 'bench' there; use a throw-away database.")
        if args.keep and Path(args.keep).exists():
            made = {"records": "(kept)", "imaging_studies": "(kept)", "setup_s": 0}
        else:
            made = child("--phase", "setup", "--db", db, "--subjects", str(args.subjects))
        print(
            f"{args.subjects} subjects × {EVENTS} events × {FORMS * ITEMS_PER_FORM} items: "
            f"{made['records']} records, {made['imaging_studies']} imaging studies (setup {made['setup_s']} s)"
        )
        results = {
            fmt: child("--phase", "export", "--db", db, "--format", fmt, "--out", work)
            for fmt in ("csv", "parquet")
        }
        base = child("--phase", "floor", "--zip", results["parquet"]["zip"], "--out", work)
        honest = child("--phase", "sql_floor", "--db", db, "--zip", results["parquet"]["zip"], "--out", work)
        print(
            f"{'':10}{'export s':>10}{'cpu s':>8}{'rows/s':>9}{'peak RSS MB':>13}"
            f"{'pandas s':>10}{'cpu s':>8}{'× floor (cpu)':>15}"
        )
        for fmt in ("csv", "parquet"):
            r, floor_s, floor_cpu = results[fmt], base[f"{fmt}_s"], base[f"{fmt}_cpu_s"]
            ratio = r["cpu_s"] / floor_cpu if floor_cpu else float("inf")
            print(
                f"{fmt:10}{r['seconds']:>10}{r['cpu_s']:>8}{r['rows_per_s']:>9}{r['peak_rss_mb']:>13}"
                f"{floor_s:>10}{floor_cpu:>8}{ratio:>15.1f}"
            )
        print(
            f"columns: {results['csv']['columns']}; pandas floor process peak RSS {base['peak_rss_mb']} MB "
            "(holds the whole frame). Targets: ≤ 2 × floor, peak RSS < 1500 MB."
        )
        _print_honest(results["parquet"], honest)


def _print_honest(parquet: dict, honest: dict) -> None:
    floor_s = honest["read_s"] + honest["write_s"]
    floor_cpu = honest["read_cpu_s"] + honest["write_cpu_s"]
    ratio = parquet["cpu_s"] / floor_cpu if floor_cpu else float("inf")
    print(
        f"honest Parquet floor (one SELECT of the {honest['records']} records' JSON + orjson: "
        f"{honest['read_s']} s, cpu {honest['read_cpu_s']} s; pyarrow building and writing the same "
        f"table: {honest['write_s']} s, cpu {honest['write_cpu_s']} s): {floor_s:.2f} s, cpu {floor_cpu:.2f} s"
    )
    print(
        f"Capture's Parquet export: {parquet['cpu_s']} cpu s = {ratio:.1f} × the honest floor (cpu); target ≤ 2 ×"
    )


if __name__ == "__main__":
    main()
