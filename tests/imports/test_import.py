"""Dry run and commit: the report, all-or-nothing writes, upserts, overwrite, locks, visibility, audit."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from guardian.shortcuts import assign_perm

from capture.audit.models import AuditEvent
from capture.audit.services import chain_key, verify_chain
from capture.imports import services
from capture.imports.mapping import Mapping
from capture.records.models import FormRecord, SubjectLock
from capture.records.services import save_record

from .conftest import HNSCC_CSV, need_shared, write_xlsx

DEMO = {
    "subject_column": "Patient",
    "event": "baseline",
    "date_format": "DMY",
    "columns": [
        {"column": "Sex", "form": "demographics", "item": "sex", "values": {"F": "1", "M": "2"}},
        {"column": "Age", "form": "demographics", "item": "age"},
        {"column": "Weight", "form": "demographics", "item": "weight"},
        {"column": "Smoker", "form": "demographics", "item": "smoker"},
        {"column": "Symptoms", "form": "demographics", "item": "symptoms"},
        {"column": "ER", "form": "demographics", "item": "er_status", "values": {"+": "pos", "-": "neg"}},
    ],
}
HEAD = ["Patient", "Sex", "Age", "Weight", "Smoker", "Symptoms", "ER"]


def run(user, study, path, spec, commit=False):
    return services.run_import(
        actor=user, study=study, path=path, mapping=Mapping.from_spec(spec), commit=commit
    )


def problems(report):
    return [
        (p["row"], p["column"], p["value"], p["reason"])
        for p in report["problems"]
        if p["severity"] == "error"
    ]


def audit_count(study, action):
    return AuditEvent.objects.filter(chain=chain_key(study), action=action).count()


def test_it_takes_the_hnscc_table_from_dry_run_to_records(hnscc_study, hnscc_mapping, personas):
    need_shared(HNSCC_CSV)
    hnscc_study.enrol(215)
    dm = personas["data_manager"]
    report = run(dm, hnscc_study, HNSCC_CSV, hnscc_mapping)
    # 13 body weights have two decimals, against an element of one: those 13 records are not counted as new.
    assert report["counts"] == {
        "rows": 215,
        "new": 202,
        "changed": 0,
        "unchanged": 0,
        "problems": 13,
        "warnings": 0,
    }
    assert (23, "AW", "70.25", "BW Start tx (kg): has more than 1 decimal place(s)") in problems(report)
    with pytest.raises(services.ImportRefusedError, match="13 problem"):
        run(dm, hnscc_study, HNSCC_CSV, hnscc_mapping, commit=True)
    assert FormRecord.objects.count() == 0

    # Fix the mapping (leave the weight out) and import.
    hnscc_mapping["columns"] = [c for c in hnscc_mapping["columns"] if c["item"] != "weight_start"]
    report = run(dm, hnscc_study, HNSCC_CSV, hnscc_mapping, commit=True)
    assert report["counts"]["new"] == 215 and report["committed"]
    record = FormRecord.objects.get(subject__subject_id="HNSCC-01-0004")
    assert record.data["sex"] == "2"
    assert record.data["t_stage"] == "T4a" and record.data["diagnosis_date"] == "1996-06-23"
    assert record.data["vital_status"] == "dead" and record.data["death_date"] == "1997-08-06"
    assert record.data["feeding_tube"] == "NA"  # 'NA' → the study's missing-data code
    assert FormRecord.objects.get(subject__subject_id="HNSCC-01-0005").data["pre_rt_imaging_date"] == "NA"
    assert audit_count(hnscc_study, "record.create") == 215 and audit_count(hnscc_study, "import.commit") == 1
    assert verify_chain(chain_key(hnscc_study)) == []

    # Re-importing the same file changes nothing.
    again = run(dm, hnscc_study, HNSCC_CSV, hnscc_mapping, commit=True)
    assert again["counts"]["unchanged"] == 215 and again["counts"]["new"] == again["counts"]["changed"] == 0
    assert audit_count(hnscc_study, "record.create") == 215 and audit_count(hnscc_study, "record.update") == 0
    assert set(FormRecord.objects.values_list("version", flat=True)) == {1}


def test_every_bad_cell_is_reported_and_nothing_is_written(trial, personas, tmp_path):
    path = write_xlsx(
        tmp_path / "bad.xlsx",
        [
            HEAD,
            ["A-0001", "F", "fifty", 70.5, "yes", "pain", "+"],  # text in a numeric column
            ["Z-0009", "F", 50, 70.5, "no", "", "-"],  # unknown subject
            ["B-0001", "X", 50, 70.25, "no", "pain; headache", "?"],  # unknown codes, two decimals
        ],
    )
    before = AuditEvent.objects.count()
    report = run(personas["data_manager"], trial, path, DEMO)
    found = problems(report)
    assert (2, "C", "fifty", "Age at enrolment: 'fifty' is not a whole number") in found
    assert (
        3,
        "A",
        "Z-0009",
        "No subject 'Z-0009' in Trial at a site you can see. Enrol the subject first, or correct the id.",
    ) in found
    assert (4, "B", "X", "Sex: 'X' is not one of the choices (1, 2)") in found
    assert (4, "D", "70.25", "Weight: has more than 1 decimal place(s)") in found
    assert (4, "F", "pain; headache", "Symptoms: headache is not one of the choices") in found
    assert (4, "G", "?", "ER: '?' is not one of the choices (pos, neg)") in found
    assert report["counts"]["problems"] == 6 and report["sheet"] == "Data"
    with pytest.raises(services.ImportRefusedError):
        run(personas["data_manager"], trial, path, DEMO, commit=True)
    assert FormRecord.objects.count() == 0 and AuditEvent.objects.count() == before


def test_an_ambiguous_date_is_reported_when_no_format_is_declared(trial, personas, tmp_path):
    path = write_xlsx(
        tmp_path / "dates.xlsx", [["Patient", "Visit"], ["A-0001", "3/4/2024"], ["B-0001", "13/4/2024"]]
    )
    spec = {
        "subject_column": "Patient",
        "event": "baseline",
        "columns": [{"column": "Visit", "form": "lesions", "item": "visit_date"}],
    }
    report = run(personas["data_manager"], trial, path, spec)
    assert problems(report) == [
        (
            2,
            "B",
            "3/4/2024",
            "visit_date: '3/4/2024' is ambiguous: it could be day/month or month/day. Declare the column's date format (D/M/Y or M/D/Y) in the mapping",
        )
    ]
    report = run(personas["data_manager"], trial, path, {**spec, "date_format": "MDY"})
    assert problems(report) == [
        (
            3,
            "B",
            "13/4/2024",
            "visit_date: '13/4/2024' is not a valid M/D/Y date (day 4, month 13); is the column's date format right?",
        )
    ]
    report = run(personas["data_manager"], trial, path, {**spec, "date_format": "DMY"}, commit=True)
    assert FormRecord.objects.get(subject__subject_id="A-0001").data == {"visit_date": "2024-04-03"}


def test_the_mapping_is_checked_against_the_sheet_and_the_study(trial, personas, tmp_path):
    path = write_xlsx(tmp_path / "m.xlsx", [HEAD, ["A-0001", "F", 50, 70.5, "yes", "", "+"]])
    spec = {
        "subject_column": "Patient",
        "event": "week_99",
        "columns": [
            {"column": "Height", "form": "demographics", "item": "age"},
            {"column": "Age", "form": "demographics", "item": "height"},
            {"column": "Sex", "form": "vitals", "item": "sex"},
            {"column": "ER", "form": "demographics", "item": "er_status", "values": {"+": "positive"}},
        ],
    }
    reasons = [p[3] for p in problems(run(personas["data_manager"], trial, path, spec))]
    assert any("no event 'week_99'" in r for r in reasons)
    assert any("The mapped column 'Height' is not in the sheet" in r for r in reasons)
    assert any("form 'demographics' has no item 'height'" in r for r in reasons)
    assert any("form 'vitals', which this study does not use" in r for r in reasons)
    assert any("gives 'positive', not among the codes of er_status (pos, neg)" in r for r in reasons)


def test_duplicate_headers_that_are_mapped_are_refused(trial, personas, tmp_path):
    path = write_xlsx(tmp_path / "d.xlsx", [["Patient", "Age", "Age"], ["A-0001", 50, 51]])
    spec = {
        "subject_column": "Patient",
        "event": "baseline",
        "columns": [{"column": "Age", "form": "demographics", "item": "age"}],
    }
    report = run(personas["data_manager"], trial, path, spec)
    assert any("More than one column is headed 'Age'" in p[3] for p in problems(report))
    assert report["counts"]["warnings"] == 1


def test_two_rows_for_one_record_are_refused(trial, personas, tmp_path):
    path = write_xlsx(
        tmp_path / "twice.xlsx",
        [HEAD, ["A-0001", "F", 50, None, None, None, None], ["A-0001", "F", 51, None, None, None, None]],
    )
    found = problems(run(personas["data_manager"], trial, path, DEMO))
    assert found == [
        (
            3,
            "A",
            "A-0001",
            "Row 2 already fills A-0001 / baseline / demographics #1; keep one of the two rows, or give each its own instance.",
        )
    ]


def test_normal_mode_ignores_blanks_and_overwrite_clears(trial, personas, tmp_path):
    dm = personas["data_manager"]
    subject = trial.subjects.get(subject_id="A-0001")
    save_record(
        actor=dm,
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values={"sex": "1", "age": 40, "weight": 60.5, "initials": "ABC"},
    )
    path = write_xlsx(tmp_path / "u.xlsx", [HEAD, ["A-0001", "F", 41, None, None, None, None]])
    report = run(dm, trial, path, DEMO, commit=True)
    assert report["counts"]["changed"] == 1
    record = FormRecord.objects.get(subject=subject)
    assert record.data == {"sex": "1", "age": 41, "weight": 60.5, "initials": "ABC"} and record.version == 2
    run(dm, trial, path, {**DEMO, "overwrite": True}, commit=True)
    record.refresh_from_db()
    # Blank mapped cells clear their items; the unmapped item (initials) is untouched.
    assert record.data == {"sex": "1", "age": 41, "initials": "ABC"} and record.version == 3
    update = (
        AuditEvent.objects.filter(action="record.update", object_id=str(record.pk)).order_by("seq").last()
    )
    assert update.before == {"weight": 60.5} and update.after == {"weight": None}


def test_a_locked_record_is_refused_by_name(trial, personas, tmp_path):
    dm = personas["data_manager"]
    subject = trial.subjects.get(subject_id="A-0001")
    record = save_record(
        actor=dm, subject=subject, event_name="baseline", form_name="demographics", values={"age": 40}
    )
    FormRecord.objects.filter(pk=record.pk).update(locked=True)
    path = write_xlsx(
        tmp_path / "l.xlsx",
        [HEAD, ["A-0001", None, 41, None, None, None, None], ["B-0001", None, 30, None, None, None, None]],
    )
    report = run(dm, trial, path, DEMO)
    assert problems(report) == [
        (
            2,
            "",
            "",
            "A-0001 / baseline / demographics #1 is locked; a data manager must unlock it before the import can change it (or remove this row).",
        )
    ]
    assert FormRecord.objects.count() == 1
    # The same value again is no change, so a locked record does not stop the import.
    path = write_xlsx(tmp_path / "same.xlsx", [HEAD, ["A-0001", None, 40, None, None, None, None]])
    assert run(dm, trial, path, DEMO, commit=True)["counts"]["unchanged"] == 1


def test_an_import_only_sees_subjects_at_the_users_sites(trial, personas, tmp_path):
    coordinator = personas["coordinator_a"]
    path = write_xlsx(
        tmp_path / "s.xlsx",
        [HEAD, ["A-0001", "F", 50, None, None, None, None], ["B-0001", "M", 60, None, None, None, None]],
    )
    with pytest.raises(PermissionDenied, match="does not allow importing"):
        run(coordinator, trial, path, DEMO)
    assign_perm("studies.import_data", coordinator, trial)  # a site-bound user who may import
    found = problems(run(coordinator, trial, path, DEMO))
    assert found == [
        (
            3,
            "A",
            "B-0001",
            "No subject 'B-0001' in Trial at a site you can see. Enrol the subject first, or correct the id.",
        )
    ]


def test_repeating_group_rows_and_events_come_from_columns(trial, personas, tmp_path):
    path = write_xlsx(
        tmp_path / "lesions.xlsx",
        [
            [
                "Patient",
                "Visit",
                "Visit date",
                "Lesion 1 site",
                "Lesion 1 mm",
                "Lesion 2 site",
                "Lesion 2 mm",
                "Read",
            ],
            ["A-0001", "Week 8", dt.date(2025, 5, 1), "liver", 12.5, "lung", 8, 1],
            ["A-0001", "Week 8", dt.date(2025, 6, 1), "liver", 10, None, None, 2],
            ["A-0001", "Screening", dt.date(2025, 3, 1), None, None, None, None, 1],
        ],
    )
    col = lambda header, item, row=1: {"column": header, "form": "lesions", "item": item, "row": row}  # noqa: E731 - a table of columns
    spec = {
        "subject_column": "Patient",
        "event_column": "Visit",
        "event_values": {"Week 8": "week_8", "Screening": "baseline"},
        "instance_column": "Read",
        "columns": [
            col("Visit date", "visit_date"),
            col("Lesion 1 site", "lesion_site"),
            col("Lesion 1 mm", "lesion_diameter"),
            col("Lesion 2 site", "lesion_site", 2),
            col("Lesion 2 mm", "lesion_diameter", 2),
        ],
    }
    report = run(personas["data_manager"], trial, path, spec, commit=True)
    assert report["counts"]["new"] == 3
    first = FormRecord.objects.get(event__name="week_8", instance=1)
    assert first.data == {
        "visit_date": "2025-05-01",
        "target_lesions": [
            {"lesion_site": "liver", "lesion_diameter": 12.5},
            {"lesion_site": "lung", "lesion_diameter": 8.0},
        ],
    }
    assert FormRecord.objects.get(event__name="week_8", instance=2).data["target_lesions"] == [
        {"lesion_site": "liver", "lesion_diameter": 10.0}
    ]
    # baseline's lesions form does not repeat: instance 2 there is an error.
    path = write_xlsx(
        tmp_path / "rep.xlsx",
        [["Patient", "Visit", "Visit date", "Read"], ["A-0001", "Screening", dt.date(2025, 3, 1), 2]],
    )
    spec["columns"] = spec["columns"][:1]
    assert (
        problems(run(personas["data_manager"], trial, path, spec))[0][3]
        == "Form 'lesions' does not repeat at 'baseline'; its only instance is 1."
    )


def test_complete_status_enforces_required_items(trial, personas, tmp_path):
    path = write_xlsx(tmp_path / "c.xlsx", [HEAD, ["A-0001", "F", None, None, None, None, None]])
    report = run(personas["data_manager"], trial, path, {**DEMO, "status": 2})
    assert problems(report) == [
        (2, "C", "", "Age at enrolment: required (enter a value or a missing-data code)")
    ]


def test_a_locked_subject_takes_no_new_or_changed_records(trial, personas, tmp_path):
    subject = trial.subjects.get(subject_id="A-0001")
    SubjectLock.objects.create(subject=subject, locked_by=personas["data_manager"], reason="database lock")
    path = write_xlsx(tmp_path / "ls.xlsx", [HEAD, ["A-0001", "F", 50, None, None, None, None]])
    assert problems(run(personas["data_manager"], trial, path, DEMO)) == [
        (
            2,
            "",
            "",
            "A-0001 is locked; a data manager must unlock the subject before its data can change (or remove this row).",
        )
    ]
