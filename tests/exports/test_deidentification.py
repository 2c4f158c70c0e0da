"""De-identified by default: no identifier column, no real date, intervals kept."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from capture.audit.models import AuditEvent
from capture.imaging.models import ImagingStudy

FORMATS = ["csv", "xlsx", "parquet", "dta", "sav", "xpt", "odm"]


def _all_text(folder) -> str:
    """Every file of the export as text (binary formats decoded loosely): what a reader could find."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(folder.iterdir()))


def _real_dates(records):
    return ["2025-03-01", "2025-03-03", "2025-04-28", "2025-05-05"]


@pytest.mark.parametrize("layout", ["wide", "long", "tidy"])
def test_a_deidentified_export_has_no_identifier_and_no_real_date(
    records, personas, study, run_export, layout
):
    _, manifest, folder = run_export(personas["statistician"], study, layout=layout, formats=FORMATS)
    text = _all_text(folder.parent / folder.name)
    assert "initials" not in (folder / "codebook.csv").read_text(encoding="utf-8-sig")
    for secret in ("ABC", "XY"):
        csv_text = "\n".join(p.read_text(encoding="utf-8-sig") for p in folder.glob("*.csv"))
        assert f",{secret}," not in csv_text and f",{secret}\n" not in csv_text
    for real in _real_dates(records):
        assert real not in text, f"{real} (an unshifted date) is in the export"
        assert real.replace("-", "") not in text
    assert {"item": "demographics.initials", "reason": "identifier (de-identified export)"} in manifest[
        "deidentification"
    ]["dropped_items"]


def test_shifted_dates_keep_every_interval(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["parquet"])
    rows = {r["subject_id"]: r for r in pq.read_table(folder / "dataset.parquet").to_pylist()}
    a = rows["A-0001"]
    shift = dt.timedelta(days=records["a"].date_shift_days)
    assert a["enrollment_date"] == dt.date(2025, 3, 1) + shift
    assert a["visit_date_baseline"] == dt.date(2025, 3, 3) + shift
    assert (a["visit_date_week_8_i1"] - a["visit_date_baseline"]).days == 56
    assert (a["visit_date_week_8_i2"] - a["enrollment_date"]).days == 65


def test_offset_mode_gives_days_since_enrolment_and_no_date_at_all(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv", "parquet"], date_mode="offset")
    frame = pd.read_csv(folder / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert "enrollment_date" not in frame.columns
    a = frame[frame["subject_id"] == "A-0001"].iloc[0]
    assert (a["visit_date_baseline"], a["visit_date_week_8_i1"], a["visit_date_week_8_i2"]) == (
        "2",
        "58",
        "65",
    )
    schema = pq.read_schema(folder / "dataset.parquet")
    assert not [f.name for f in schema if str(f.type).startswith(("date", "timestamp"))]


def test_rehashed_ids_differ_per_export_and_keep_the_patient_model_link(records, personas, study, run_export):
    first = run_export(personas["statistician"], study, formats=["csv"], rehash_ids=True)[2]
    second = run_export(personas["statistician"], study, formats=["csv"], rehash_ids=True)[2]
    one = pd.read_csv(first / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    two = pd.read_csv(second / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert not {"A-0001", "A-0002", "B-0001"} & set(one["subject_id"])
    assert not set(one["subject_id"]) & set(two["subject_id"])
    model = one[one["subject_kind"] == "animal"].iloc[0]
    assert model["derived_from"] in set(one["subject_id"])  # the PDX still points at its patient


def test_free_text_is_dropped_on_request(records, personas, study, run_export):
    _, manifest, folder = run_export(personas["statistician"], study, formats=["csv"], drop_free_text=True)
    header = (folder / "dataset.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "lesion_site" not in header and "strain" not in header
    assert "sex_baseline" in header  # coded text is not free text
    dropped = {d["item"] for d in manifest["deidentification"]["dropped_items"]}
    assert {"lesions.lesion_site", "animal.strain", "demographics.initials"} <= dropped


def test_an_identified_export_includes_identifiers_real_dates_and_is_audited(
    records, personas, study, run_export
):
    _, manifest, folder = run_export(
        personas["pi"],
        study,
        formats=["csv"],
        identified=True,
        date_mode="none",
        reason="Linkage to registry",
    )
    frame = pd.read_csv(folder / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    a = frame[frame["subject_id"] == "A-0001"].iloc[0]
    assert a["initials_baseline"] == "ABC"
    assert a["visit_date_baseline"] == "2025-03-03"
    event = AuditEvent.objects.filter(study=study, action="export.create").latest("seq")
    assert event.reason == "Linkage to registry"
    assert event.actor == personas["pi"]
    assert event.after["spec"]["identified"] is True
    assert manifest["deidentification"]["identified"] is True


def test_an_identified_export_needs_a_reason(records, personas, study, run_export):
    with pytest.raises(ValidationError, match="reason"):
        run_export(personas["pi"], study, identified=True)


@pytest.mark.parametrize("persona", ["statistician", "data_manager"])
def test_roles_without_the_right_cannot_export_identified_data(records, personas, study, run_export, persona):
    with pytest.raises(PermissionDenied, match="de-identified exports only"):
        run_export(personas[persona], study, identified=True, reason="please", date_mode="none")
    assert not AuditEvent.objects.filter(study=study, action="export.create").exists()


def test_real_dates_need_an_identified_export(records, personas, study, run_export):
    with pytest.raises(ValidationError, match="identified"):
        run_export(personas["pi"], study, date_mode="none")


def test_every_export_is_audited_with_its_filters_and_file_hashes(records, personas, study, run_export):
    path, manifest, _ = run_export(personas["statistician"], study, formats=["csv"], sites=["B"])
    event = AuditEvent.objects.filter(study=study, action="export.create").latest("seq")
    assert event.actor == personas["statistician"]
    assert event.after["spec"]["sites"] == ["B"]
    assert event.after["bundle"]["name"] == path.name
    assert json.dumps(event.after["files"]) == json.dumps(manifest["files"])


def test_rehashed_exports_cannot_be_joined_on_imaging_uids(records, personas, study, run_export):
    a = records["a"]
    stored = ["2.25.111111", "2.25.222222"]
    for n, uid in enumerate(stored):
        ImagingStudy.objects.create(
            study=study,
            subject=a,
            study_uid=uid,
            modalities="CT",
            study_date=a.enrollment_date + dt.timedelta(days=a.date_shift_days + 30 * n),
            source_kind="folder",
            source="x",
        )

    def uids(folder) -> tuple[list[str], list[str]]:
        subjects = pd.read_csv(
            folder / "subjects.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
        studies = pd.read_csv(
            folder / "imaging_studies.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
        listed = [u for cell in subjects["imaging_study_uids"] if cell for u in cell.split("|")]
        return listed, studies["study_uid"].tolist()

    plain = uids(run_export(personas["statistician"], study, formats=["csv"], layout="tidy")[2])
    assert plain == (stored, stored)  # without re-hashing: the imaging app's de-identified UIDs
    first = uids(
        run_export(personas["statistician"], study, formats=["csv"], layout="tidy", rehash_ids=True)[2]
    )
    second = uids(
        run_export(personas["statistician"], study, formats=["csv"], layout="tidy", rehash_ids=True)[2]
    )
    for listed, table in (first, second):
        assert listed == table, "one export names each study by one UID in every table"
        assert not set(table) & set(stored)
        assert all(u.startswith("2.25.") and u[5:].isdigit() and len(u) <= 64 for u in table)
        assert len(set(table)) == 2
    assert not set(first[1]) & set(second[1]), "the same study has another UID in each rehashed export"
