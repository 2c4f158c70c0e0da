"""The data files of an export stay the same, cell for cell, whatever the builder's internals.

The exports are built for speed (columns per chunk of subjects); this pins what a statistician
receives — CSV text, Parquet schema and values, XLSX cells — for the fixture study under the
main options, against snapshots in tests/exports/golden/. A snapshot changes only when an
export's output is meant to change: then regenerate with
`CAPTURE_UPDATE_GOLDEN=1 pytest tests/exports/test_output_stable.py` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from capture.imaging.models import ImagingStudy
from capture.studies.models import Subject

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "wide": ("statistician", {}),
    "wide_labels_combined": ("statistician", {"labels": True, "checkboxes": "combined"}),
    "wide_offset_no_free_text": ("statistician", {"date_mode": "offset", "drop_free_text": True}),
    "wide_identified": ("admin", {"identified": True, "reason": "audit", "date_mode": "none"}),
    "long": ("statistician", {"layout": "long"}),
    "long_labels": ("statistician", {"layout": "long", "labels": True}),
    "tidy": ("statistician", {"layout": "tidy"}),
}


@pytest.fixture
def fixed_records(records, study):
    """The fixture records with fixed date shifts (not derived from a key) and two imaging studies."""
    for n, subject in enumerate(Subject.objects.filter(study=study).order_by("subject_id")):
        subject.date_shift_days = -(40 + 17 * n)
        subject.save(update_fields=["date_shift_days"])
    a = Subject.objects.get(pk=records["a"].pk)
    for n, modalities in enumerate(["CT", "CT,PT"]):
        ImagingStudy.objects.create(
            study=study,
            subject=a,
            study_uid=f"2.25.{n}",
            modalities=modalities,
            study_date=a.enrollment_date + dt.timedelta(days=a.date_shift_days + 30 * n),
            source_kind="folder",
            source="x",
        )
    return records


def _plain(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _contents(folder: Path) -> dict:
    out: dict = {}
    for path in sorted(folder.glob("*.csv")):
        out[path.name] = path.read_text(encoding="utf-8-sig")
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        out[path.name] = {
            "schema": [
                [f.name, str(f.type), {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}]
                for f in table.schema
            ],
            "rows": [[_plain(v) for v in row.values()] for row in table.to_pylist()],
        }
    for path in sorted(folder.glob("*.xlsx")):
        book = openpyxl.load_workbook(path, read_only=True)
        out[path.name] = {
            sheet.title: [[_plain(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            for sheet in book.worksheets
        }
        book.close()
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_files_match_their_snapshot(case, fixed_records, personas, study, run_export):
    user, options = CASES[case]
    _, _, folder = run_export(personas[user], study, formats=["csv", "parquet", "xlsx"], **options)
    got = json.loads(json.dumps(_contents(folder)))
    path = GOLDEN / f"{case}.json"
    if os.environ.get("CAPTURE_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(
            json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(got) == sorted(expected), f"{case}: files differ from the snapshot {path}"
    for name in expected:
        assert got[name] == expected[name], (
            f"{case}: {name} differs from the snapshot {path}. If the change is intended, regenerate "
            "with CAPTURE_UPDATE_GOLDEN=1 and review the diff."
        )


def test_wide_rows_keep_each_subjects_values_whatever_order_records_arrive_in(
    records, personas, study, run_export
):
    # Enrolled after B-0001, A-0003 sorts before it: the database returns its record after B's,
    # while the wide table's rows follow subject ids.
    from capture.records.services import save_record
    from capture.studies import services as study_services

    admin = personas["admin"]
    site_a = study.sites.get(code="A")
    late = study_services.enroll_subject(
        actor=admin, study=study, site=site_a, enrollment_date=dt.date(2025, 3, 1)
    )
    save_record(
        actor=admin,
        subject=late,
        event_name="baseline",
        form_name="demographics",
        values={"sex": "2", "age": 61, "weight": "90.0", "smoker": "0", "er_status": "neg"},
        status=2,
    )
    # Every exported subject has the baseline demographics record: its column is filled whole.
    chosen = ["A-0001", late.subject_id, "B-0001"]
    _, _, folder = run_export(personas["statistician"], study, formats=["csv", "parquet"], subjects=chosen)
    table = pq.read_table(folder / "dataset.parquet").to_pylist()
    ages = {row["subject_id"]: row["age_baseline"] for row in table}
    assert [row["subject_id"] for row in table] == chosen
    assert ages == {"A-0001": 54, late.subject_id: 61, "B-0001": None}  # B-0001: UNK
    text = (folder / "dataset.csv").read_text(encoding="utf-8-sig")
    assert f"\n{late.subject_id},A," in text
