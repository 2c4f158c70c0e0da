"""Spreadsheet import benchmark (issue 3; the realistic sheet: issue 18).

Generates an N-row × 40-column XLSX (subject ids, integers, decimals, coded categories, Excel dates,
'MM/DD/YYYY' strings, free text, blanks and legacy missing codes '-9' / 'n/a'; one flat form, every
row a new record) and measures, each in its own process so peak RSS is its own:

  end-to-end  Capture's import: read, map, validate every cell, compare, write, audit (one transaction)
  (a) parse   the bare parse of the file with the fastest reader (python-calamine)
  (b) insert  a bare executemany (SQLite) / COPY (PostgreSQL) of the parsed rows as JSON into a table
  (c) d-i-e   django-import-export importing the same rows into a plain 40-column model (if installed)

and prints rows/s, peak RSS and the ratios the issue sets as targets:
end to end ≤ 2.5 × (a + b), ≥ 20 × faster than django-import-export, peak RSS < 1 GB.

That flat sheet has no branching, calculations, checkboxes or repeats. The realistic sheet
(benchmarks/_realistic.py: about N rows of the shipped crf_definitions/ forms, as a site keeps them:
branching, calculations, checkbox cells, a repeating group, repeating forms, legacy labels, varied
values) is then imported into a study on the shipped schedule twice: first into empty records, then
a corrected copy over them (about 60 % of the records change, the rest are unchanged), with (a) and
(b) measured on it too. Both tables are printed. `--skip-realistic` leaves it out.

    .venv/bin/python benchmarks/import_bench.py                 # 100,000 rows, SQLite
    .venv/bin/python benchmarks/import_bench.py --rows 500      # toy size (CI)
    DATABASE_URL=postgres://… .venv/bin/python benchmarks/import_bench.py --rows 100000

The database is a fresh SQLite file in a temporary folder, or the PostgreSQL database of DATABASE_URL
(its Capture tables must be migrated; the benchmark creates its own study and removes nothing else).
Subjects are created with bulk_create as set-up, not through the enrolment service: enrolling 100,000
subjects one by one would take longer than everything measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_INT, N_DEC, N_CODE, N_XDATE, N_SDATE, N_TEXT = 10, 10, 8, 4, 2, 5  # + the id column = 40
CODES = ["1", "2", "3", "4", "5"]
LEGACY = {"1": "Never", "2": "Former", "3": "Current", "4": "Unknown smoker", "5": "Other"}


def columns() -> list[tuple[str, str]]:
    cols = [(f"int_{i}", "integer") for i in range(N_INT)]
    cols += [(f"dec_{i}", "decimal") for i in range(N_DEC)]
    cols += [(f"code_{i}", "code") for i in range(N_CODE)]
    cols += [(f"xdate_{i}", "date") for i in range(N_XDATE)]
    cols += [(f"sdate_{i}", "date") for i in range(N_SDATE)]
    cols += [(f"text_{i}", "text") for i in range(N_TEXT)]
    return cols


# ------------------------------------------------------------------------------------ set-up


def generate_xlsx(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    rnd = random.Random(3)  # noqa: S311 - benchmark data, nothing secret
    book = Workbook(write_only=True)
    ws = book.create_sheet("Data")
    ws.append(["Subject"] + [name for name, _ in columns()])
    base = dt.date(2000, 1, 1)
    for r in range(rows):
        row: list = [f"S-{r + 1:06d}"]
        for name, kind in columns():
            x = rnd.random()
            if x < 0.05:
                row.append(None)
                continue
            if x < 0.07:
                row.append(rnd.choice(["-9", "n/a"]))
                continue
            if kind == "integer":
                row.append(rnd.randint(0, 500))
            elif kind == "decimal":
                row.append(round(rnd.uniform(0, 300), 1))
            elif kind == "code":
                row.append(LEGACY[rnd.choice(CODES)])
            elif kind == "date" and name.startswith("xdate"):
                row.append(base + dt.timedelta(days=rnd.randint(0, 8000)))
            elif kind == "date":
                d = base + dt.timedelta(days=rnd.randint(0, 8000))
                row.append(f"{d.month:02d}/{d.day:02d}/{d.year}")
            else:
                row.append(f"note {rnd.randint(0, 10**6)} about {name}")
        ws.append(row)
    book.save(path)


def definitions_dir(folder: Path) -> Path:
    elements = []
    items = []
    for name, kind in columns():
        element = {
            "public_id": f"capture.bench_{name}",
            "version": "1.0",
            "name": name,
            "long_name": f"Bench {name}",
            "question": name,
            "datatype": {"code": "text", "integer": "integer", "decimal": "decimal", "date": "date"}.get(
                kind, "text"
            ),
        }
        if kind == "decimal":
            element["decimal_places"] = 1
        if kind == "code":
            element["permissible_values"] = [{"code": c, "meaning": LEGACY[c]} for c in CODES]
        elements.append(element)
        items.append({"element": f"capture.bench_{name}@1.0"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "elements.yaml").write_text(json.dumps({"elements": elements}))
    (folder / "form.yaml").write_text(
        json.dumps(
            {
                "form": "bench",
                "version": "1.0",
                "title": "Bench",
                "sections": [{"title": "All", "items": items}],
            }
        )
    )
    (folder / "schedule.yaml").write_text(
        json.dumps(
            {
                "schedule": "bench",
                "version": "1.0",
                "title": "Bench",
                "arms": [
                    {
                        "name": "patients",
                        "title": "Patients",
                        "events": [{"name": "baseline", "title": "Baseline", "forms": ["bench@1.0"]}],
                    }
                ],
            }
        )
    )
    return folder


def mapping_spec() -> dict:
    cols = []
    for name, kind in columns():
        col = {"column": name, "form": "bench", "item": name}
        if kind == "code":
            col["values"] = {v: k for k, v in LEGACY.items()}
        if name.startswith("sdate"):
            col["date_format"] = "MDY"
        cols.append(col)
    return {
        "subject_column": "Subject",
        "event": "baseline",
        "date_format": "MDY",
        "missing_values": {"-9": "UNK", "n/a": "NA"},
        "columns": cols,
    }


def django_setup(db_path: str) -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare(db_path: str, rows: int, work: Path, realistic: bool = True) -> None:
    django_setup(db_path)
    import _realistic
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.studies import services
    from capture.studies.models import Subject

    call_command("migrate", verbosity=0)
    load_definitions([definitions_dir(work / "defs")], actor=SYSTEM)
    user, _ = get_user_model().objects.get_or_create(username="bench_dm")
    slug = f"bench{int(time.time())}"
    study = services.create_study(
        actor=SYSTEM, slug=slug, name="Bench", schedule=Schedule.objects.get(name="bench")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="S", name="Bench site")
    services.grant_role(actor=SYSTEM, study=study, user=user, role="data_manager")
    arm = study.schedule.arms.get()
    Subject.objects.bulk_create(
        [
            Subject(
                study=study,
                site=site,
                arm=arm,
                subject_id=f"S-{i:06d}",
                seq=i,
                kind="patient",
                enrollment_date=dt.date(2020, 1, 1),
                date_shift_days=-100,
            )
            for i in range(1, rows + 1)
        ],
        batch_size=5000,
    )
    (work / "study.txt").write_text(slug)
    if realistic:
        _realistic.prepare(_realistic.subjects_for(rows), slug + "real")
        (work / "real_study.txt").write_text(slug + "real")


# ------------------------------------------------------------------------------------ phases


def phase_import(db_path: str, xlsx: Path, work: Path) -> dict:
    django_setup(db_path)
    from django.contrib.auth import get_user_model

    from capture.imports import services
    from capture.imports.mapping import Mapping
    from capture.studies.models import Study

    study = Study.objects.get(slug=(work / "study.txt").read_text())
    user = get_user_model().objects.get(username="bench_dm")
    started = _clock()
    report = services.run_import(
        actor=user, study=study, path=xlsx, mapping=Mapping.from_spec(mapping_spec()), commit=True
    )
    assert report["counts"]["problems"] == 0, report["problems"][:5]
    return {"records": report["counts"]["new"], **_since(started)}


def phase_realistic(db_path: str, xlsx: Path, work: Path) -> dict:
    """The realistic sheet into its study: every record new on the first pass, some changed after."""
    django_setup(db_path)
    import _realistic
    from django.contrib.auth import get_user_model

    from capture.imports import services
    from capture.imports.mapping import Mapping
    from capture.records.models import FormRecord
    from capture.studies.models import Study

    study = Study.objects.get(slug=(work / "real_study.txt").read_text())
    user = get_user_model().objects.get(username="bench_dm")
    mapping = Mapping.from_spec(_realistic.mapping_spec())
    started = _clock()
    report = services.run_import(actor=user, study=study, path=xlsx, mapping=mapping, commit=True)
    done = _since(started)
    assert report["counts"]["problems"] == 0, report["problems"][:5]
    records = FormRecord.objects.filter(subject__study=study)
    counts = report["counts"]
    return {
        "new": counts["new"],
        "changed": counts["changed"],
        "unchanged": counts["unchanged"],
        "stored": records.count(),
        "version_2": records.filter(version=2).count(),
        **done,
    }


def phase_parse(xlsx: Path) -> dict:
    started = _clock()
    import python_calamine as pc

    rows = pc.CalamineWorkbook.from_path(str(xlsx)).get_sheet_by_name("Data").to_python()
    return {"rows": len(rows) - 1, **_since(started)}


def phase_insert(db_path: str, xlsx: Path) -> dict:
    import python_calamine as pc

    rows = pc.CalamineWorkbook.from_path(str(xlsx)).get_sheet_by_name("Data").to_python()
    header = rows[0]
    started = _clock()
    payload = [(r[0], json.dumps(dict(zip(header[1:], r[1:], strict=True)), default=str)) for r in rows[1:]]
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE bench_bare (subject text, data jsonb)")
            with cur.copy("COPY bench_bare (subject, data) FROM STDIN") as copy:
                for row in payload:
                    copy.write_row(row)
    else:
        import sqlite3

        conn = sqlite3.connect(db_path)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_bare (subject text, data text)")
        conn.executemany("INSERT INTO bench_bare VALUES (?, ?)", payload)
        conn.commit()
        conn.close()
    return {"rows": len(payload), **_since(started)}


def phase_die(db_path: str, xlsx: Path, mode: str) -> dict:
    django_setup(db_path)
    try:
        import import_export  # noqa: F401 - only to know whether it is installed
    except ImportError:
        return {"skipped": "django-import-export is not installed"}
    import tablib
    from django.db import connection, models
    from import_export import resources
    from import_export.instance_loaders import CachedInstanceLoader

    attrs = {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "imports", "db_table": "bench_plain"}),
    }
    attrs["subject"] = models.CharField(max_length=20)
    for name, kind in columns():
        if kind == "integer":
            attrs[name] = models.CharField(max_length=20, null=True)  # '-9' / 'n/a' appear in every column
        else:
            attrs[name] = models.CharField(max_length=100, null=True)
    plain = type("BenchPlain", (models.Model,), attrs)
    with connection.schema_editor() as editor:
        editor.execute("DROP TABLE IF EXISTS bench_plain")
        editor.create_model(plain)
    import python_calamine as pc

    started = _clock()  # the file is read with the fastest reader, as Capture's import reads it
    rows = pc.CalamineWorkbook.from_path(str(xlsx)).get_sheet_by_name("Data").to_python()
    header = ["subject"] + list(rows[0][1:])
    data = tablib.Dataset(*[[None if v == "" else str(v) for v in r] for r in rows[1:]], headers=header)
    if mode == "default":
        # Out of the box: a save() per row and a diff per row, rows matched by the subject id.
        options: dict = {"model": plain, "import_id_fields": ["subject"]}
    else:
        # The job Capture's import does (create or update by subject id), configured as
        # django-import-export's "Performance tuning" docs advise for a large import: bulk mode
        # (batches of 1000), existing rows loaded once (CachedInstanceLoader), no per-row diff.
        options = {
            "model": plain,
            "import_id_fields": ["subject"],
            "instance_loader_class": CachedInstanceLoader,
            "use_bulk": True,
            "batch_size": 1000,
            "skip_diff": True,
        }
    resource = type("BenchResource", (resources.ModelResource,), {"Meta": type("Meta", (), options)})()
    result = resource.import_data(data, dry_run=False, raise_errors=True)
    assert plain.objects.count() == result.total_rows
    return {"rows": result.total_rows, **_since(started)}


def _clock() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime


def _since(started: tuple[float, float]) -> dict:
    """Wall and CPU seconds of this process since `started` (the database server's own CPU, on
    PostgreSQL, is not included)."""
    wall, cpu = _clock()
    return {"work_seconds": wall - started[0], "cpu_seconds": cpu - started[1]}


def run_phase(args) -> None:
    started = time.perf_counter()
    work = Path(args.work)
    if args.phase == "import":
        out = phase_import(args.db, Path(args.xlsx), work)
    elif args.phase == "realistic":
        out = phase_realistic(args.db, Path(args.xlsx), work)
    elif args.phase == "parse":
        out = phase_parse(Path(args.xlsx))
    elif args.phase == "insert":
        out = phase_insert(args.db, Path(args.xlsx))
    else:
        out = phase_die(args.db, Path(args.xlsx), args.die)
    out["seconds"] = time.perf_counter() - started  # the whole process, Django start-up included
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def spawn(phase: str, args, work: Path, xlsx: Path, mode: str = "bulk") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--work",
        str(work),
        "--xlsx",
        str(xlsx),
        "--db",
        args.db,
        "--die",
        mode,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())  # noqa: S603 - our own script
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--phase", choices=["import", "realistic", "parse", "insert", "die"])
    parser.add_argument("--work", default="")
    parser.add_argument("--xlsx", default="")
    parser.add_argument("--db", default="")
    parser.add_argument(
        "--skip-die", action="store_true", help="do not run django-import-export (slow at full size)"
    )
    parser.add_argument(
        "--skip-realistic",
        action="store_true",
        help="do not run the realistic sheet (crf_definitions/ forms)",
    )
    parser.add_argument(
        "--die",
        choices=["bulk", "default", "both"],
        default="bulk",
        help="django-import-export as its performance-tuning docs advise (bulk, the default), out of "
        "the box (a save per row), or both",
    )
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        work = Path(tmp)
        args.db = args.db or str(work / "bench.sqlite3")
        xlsx = work / "bench.xlsx"
        t = time.perf_counter()
        generate_xlsx(xlsx, args.rows)
        print(
            f"generated {args.rows:,} × 40 XLSX ({xlsx.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        prepare_cmd = [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"import import_bench as b; from pathlib import Path; "
            f"b.prepare({args.db!r}, {args.rows}, Path({tmp!r}), {not args.skip_realistic})",
        ]
        subprocess.run(prepare_cmd, check=True, env=os.environ.copy())  # noqa: S603 - our own code
        print(f"set up study and {args.rows:,} subjects in {time.perf_counter() - t:.1f} s")
        backend = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
        results = {
            "end-to-end import": spawn("import", args, work, xlsx),
            "(a) bare parse": spawn("parse", args, work, xlsx),
            "(b) bare insert": spawn("insert", args, work, xlsx),
        }
        if not args.skip_die:
            if args.die in ("bulk", "both"):
                results["(c) django-import-export"] = spawn("die", args, work, xlsx, "bulk")
            if args.die in ("default", "both"):
                results["(c') d-i-e out of the box"] = spawn("die", args, work, xlsx, "default")
        print(f"\n{args.rows:,} rows × 40 columns on {backend}")
        print(
            "seconds: the work itself, from the file to the committed rows (Django start-up, timed apart,\n"
            "is not part of an import: a worker is already running); CPU: this process only"
            + (", not the PostgreSQL server's" if backend == "PostgreSQL" else "")
        )
        print(f"{'':30} {'seconds':>9} {'rows/s':>10} {'CPU s':>8} {'start-up s':>11} {'peak RSS MB':>12}")
        for name, r in results.items():
            if "skipped" in r:
                print(f"{name:30} {r['skipped']}")
                continue
            startup = r["seconds"] - r["work_seconds"] if name[:3] in ("end", "(c)", "(c'") else 0.0
            print(
                f"{name:30} {r['work_seconds']:9.2f} {args.rows / r['work_seconds']:10,.0f} {r['cpu_seconds']:8.2f}"
                f" {startup:11.2f} {r['peak_rss_mb']:12.0f}"
            )
        e2e = results["end-to-end import"]
        a, b = results["(a) bare parse"], results["(b) bare insert"]
        for what in ("work_seconds", "cpu_seconds"):
            ratio = e2e[what] / (a[what] + b[what])
            print(
                f"\nend to end / (a + b) = {ratio:.2f} by {what.split('_')[0]} time  (target ≤ 2.5)", end=""
            )
        print()
        for name, die in results.items():
            if name.startswith("(c") and "work_seconds" in die:
                print(
                    f"{name.split(' ', 1)[1]} / end to end = {die['work_seconds'] / e2e['work_seconds']:.1f}"
                    "  (target ≥ 20)"
                )
        print(f"peak RSS of the import = {e2e['peak_rss_mb']:.0f} MB  (target < 1024)")
        if not args.skip_realistic:
            realistic(args, work, backend)


def realistic(args, work: Path, backend: str) -> None:
    """Generate, import and report the realistic sheet: a first import, then a corrected copy."""
    import _realistic

    first, second = work / "realistic.xlsx", work / "realistic_corrected.xlsx"
    t = time.perf_counter()
    shape = _realistic.generate(first, args.rows)
    _realistic.generate(second, args.rows, update=True)
    print(
        f"\ngenerated the realistic sheet: {shape['rows']:,} rows × {shape['columns']} columns, "
        f"{shape['subjects']:,} patients ({first.stat().st_size / 1e6:.1f} MB), and its corrected copy, "
        f"in {time.perf_counter() - t:.1f} s"
    )
    results = {
        "first import (all new)": spawn("realistic", args, work, first),
        "second import (corrections)": spawn("realistic", args, work, second),
        "(a) bare parse": spawn("parse", args, work, first),
        "(b) bare insert": spawn("insert", args, work, first),
    }
    rows = shape["rows"]
    print(
        f"\nrealistic sheet, {rows:,} rows × {shape['columns']} columns on {backend}: 8 of the shipped forms, "
        "branching, calculations,\ncheckbox cells, a repeating group (target lesions), repeating forms "
        "(serum markers, treatments), legacy labels, varied values"
    )
    print(
        f"{'':30} {'seconds':>9} {'rows/s':>10} {'CPU s':>8} {'peak RSS MB':>12} "
        f"{'new':>8} {'changed':>8} {'unchanged':>10}"
    )
    for name, r in results.items():
        counts = f" {r['new']:8,} {r['changed']:8,} {r['unchanged']:10,}" if "new" in r else ""
        print(
            f"{name:30} {r['work_seconds']:9.2f} {rows / r['work_seconds']:10,.0f} {r['cpu_seconds']:8.2f}"
            f" {r['peak_rss_mb']:12.0f}{counts}"
        )
    made, fixed = results["first import (all new)"], results["second import (corrections)"]
    if fixed["changed"] == 0 or fixed["new"] != 0 or made["stored"] != made["new"]:
        raise SystemExit(f"the realistic passes did not write what they should: {made} / {fixed}")
    if fixed["version_2"] != fixed["changed"]:
        raise SystemExit(f"{fixed['changed']} records changed but {fixed['version_2']} are at version 2")
    a, b = results["(a) bare parse"], results["(b) bare insert"]
    for what in ("work_seconds", "cpu_seconds"):
        ratio = made[what] / (a[what] + b[what])
        print(f"first import / (a + b) = {ratio:.2f} by {what.split('_')[0]} time")
    print(
        f"the first import wrote {made['new']:,} records ({made['new'] / made['work_seconds']:,.0f} records/s); "
        f"the second changed {fixed['changed']:,} (each now at version 2) and left {fixed['unchanged']:,} "
        f"unchanged, in {fixed['work_seconds'] / made['work_seconds']:.2f} × the first's time"
    )


if __name__ == "__main__":
    main()
