"""Measurement sheets: the dry run names every bad cell, the import is all or nothing, and the same
sheet imported again changes nothing. Subjects a (site A) and b (site B) are enrolled 2025-03-01 on
the basic arm: baseline on day 0 (no window), week_8 on day 56 (49 to 63)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.imports import measurement_sheet
from capture.imports.measurement_mapping import SheetMapping, suggest
from capture.imports.models import ImportUpload
from capture.imports.report import ImportRefusedError
from capture.measurements.models import Lesion, Measurement, MeasurementReport

HEAD = "Subject,Scan date,Visit,Lesion ID,Measurement,Value,Unit,Finding site,Lymph node,Reader"
MAPPING = SheetMapping(
    subject_column="Subject",
    date_column="Scan date",
    event_column="Visit",
    lesion_column="Lesion ID",
    type_column="Measurement",
    value_column="Value",
    unit_column="Unit",
    site_column="Finding site",
    node_column="Lymph node",
    reader_column="Reader",
    date_format="YMD",
)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def sheet(tmp_path, subjects, *rows: str, name="sheet.csv"):
    """A CSV whose rows may say {a} and {b} for the subjects' ids."""
    ids = {"a": subjects["a"].subject_id, "b": subjects["b"].subject_id}
    path = tmp_path / name
    path.write_text("\n".join([HEAD, *(row.format(**ids) for row in rows)]) + "\n", encoding="utf-8")
    return path


GOOD = (
    "{a},2025-03-01,,L1,long axis,30,mm,Liver (SCT:10200004),no,R1",
    "{a},2025-03-01,,N1,short axis,1.5,cm,,yes,R1",
    "{a},,week_8,L1,Long Axis,24,mm,,,R1",
    "{a},,week_8,N1,SCT:103340004,9,mm,,yes,R1",
    "{b},2025-04-30,week_8,T1,SUVmax,7.25,g/mL,,,R2",
)


def run(study, user, path, *, commit):
    return measurement_sheet.run_import(actor=user, study=study, path=path, mapping=MAPPING, commit=commit)


@pytest.mark.django_db
def test_the_dry_run_names_every_bad_cell(study, subjects, personas, tmp_path):
    path = sheet(
        tmp_path,
        subjects,
        "{a},2025-03-01,,L1,long axis,30,mm,,,R1",  # row 2: good
        "NOPE-9,2025-03-01,,L1,long axis,30,mm,,,R1",  # row 3: unknown subject (column A)
        "{a},2025-03-01,,L2,girth,30,mm,,,R1",  # row 4: unknown measurement (E)
        "{a},2025-03-01,,L3,volume,3,cc,,,R1",  # row 5: not UCUM (G)
        "{a},2025-03-01,,L4,long axis,3,cm3,,,R1",  # row 6: UCUM, but a volume (G)
        "{a},2025-03-01,,L5,long axis,about 3,mm,,,R1",  # row 7: not a number (F)
        "{a},2025-04-01,,L6,long axis,30,mm,,,R1",  # row 8: day 31, in no window (B)
        "{a},2025-03-01,,L1,long axis,31,mm,,,R1",  # row 9: row 2 again (D)
        "{a},2025-03-01,week_8,L7,long axis,30,mm,,,R1",  # row 10: day 0 is not week_8's window (B)
        "{a},2025-03-01,,L8,long axis,30,mm,,maybe,R1",  # row 11: not yes/no (I)
        "{a},2025-03-01,,L9,long axis,30,mm,,,R9",  # row 12: another reader of the same reading (J)
    )
    report = run(study, personas["data_manager"], path, commit=False)
    found = {(p["row"], p["column"]) for p in report["problems"]}
    assert found == {
        (3, "A"),
        (4, "E"),
        (5, "G"),
        (6, "G"),
        (7, "F"),
        (8, "B"),
        (9, "D"),
        (10, "B"),
        (11, "I"),
        (12, "J"),
    }
    reasons = {p["row"]: p["reason"] for p in report["problems"]}
    assert "No subject 'NOPE-9'" in reasons[3]
    assert "'girth' is not a measurement" in reasons[4]
    assert reasons[5] == "'cc' is not a UCUM unit; write 'cm3'."
    assert reasons[6] == "'cm3' is a unit of volume; Long axis is a length: use mm or cm."
    assert "'about 3' is not a number" in reasons[7]
    assert "is day 31" in reasons[8] and "no event window" in reasons[8]
    assert reasons[9].startswith("Row 2 already gives Long axis of lesion L1")
    assert "outside the window of week_8 (days 49 to 63)" in reasons[10]
    assert report["counts"]["problems"] == 10
    assert not MeasurementReport.objects.exists()


@pytest.mark.django_db
def test_a_sheet_with_one_bad_cell_stores_nothing(study, subjects, personas, tmp_path):
    path = sheet(tmp_path, subjects, *GOOD, "{b},2025-04-30,,T2,long axis,12,inch,,,R2")
    with pytest.raises(ImportRefusedError, match="1 problem"):
        run(study, personas["data_manager"], path, commit=True)
    assert not MeasurementReport.objects.exists()
    assert not Lesion.objects.exists()


@pytest.mark.django_db
def test_a_good_sheet_is_stored_as_one_report_per_subject_and_date(study, subjects, personas, tmp_path):
    a, b = subjects["a"], subjects["b"]
    path = sheet(tmp_path, subjects, *GOOD)
    report = run(study, personas["data_manager"], path, commit=True)
    assert report["counts"] | {} == {
        "rows": 5,
        "new": 3,
        "changed": 0,
        "unchanged": 0,
        "problems": 0,
        "warnings": 0,
    }
    key = measurement_sheet.file_key(path)

    def uid(subject, real: str) -> str:  # the UID names the date on the subject's shifted calendar
        shifted = dt.date.fromisoformat(real) + dt.timedelta(days=subject.date_shift_days)
        return f"sheet:{key}:{subject.subject_id}:{shifted}"

    reports = {r.sop_uid: r for r in MeasurementReport.objects.all()}
    assert set(reports) == {
        uid(a, "2025-03-01"),
        uid(a, "2025-04-26"),  # week_8 named without a date: day 56
        uid(b, "2025-04-30"),
    }
    assert a.date_shift_days != 0  # so the UIDs above hold no real date
    baseline = reports[uid(a, "2025-03-01")]
    assert baseline.source_kind == "sheet" and baseline.observer == "R1" and baseline.event == "baseline"
    assert baseline.report_date == dt.date(2025, 3, 1) + dt.timedelta(days=a.date_shift_days)
    values = {
        (m.lesion.tracking_id, m.concept_code, m.derivation): (m.value, m.unit)
        for m in Measurement.objects.filter(report=baseline)
    }
    assert values == {
        ("L1", "103339001", ""): (Decimal("30"), "mm"),
        ("N1", "103340004", ""): (Decimal("1.5"), "cm"),
    }
    liver = Lesion.objects.get(subject=a, tracking_id="L1")
    assert (liver.site_scheme, liver.site_code, liver.site_meaning, liver.is_node) == (
        "SCT",
        "10200004",
        "Liver",
        False,
    )
    assert Lesion.objects.get(subject=a, tracking_id="N1").is_node
    suv = Measurement.objects.get(report__subject=b)
    assert (suv.concept_scheme, suv.concept_code, suv.derivation, suv.value, suv.unit) == (
        "DCM",
        "126401",
        "Maximum",
        Decimal("7.25"),
        "g/mL",
    )


@pytest.mark.django_db
def test_importing_the_same_sheet_again_changes_nothing(study, subjects, personas, tmp_path):
    path = sheet(tmp_path, subjects, *GOOD)
    run(study, personas["data_manager"], path, commit=True)
    counts = (MeasurementReport.objects.count(), Measurement.objects.count(), AuditEvent.objects.count())
    again = run(study, personas["data_manager"], path, commit=True)
    assert (again["counts"]["new"], again["counts"]["unchanged"]) == (0, 3)
    assert (
        MeasurementReport.objects.count(),
        Measurement.objects.count(),
        AuditEvent.objects.count(),
    ) == counts


@pytest.mark.django_db
def test_a_role_without_the_import_right_is_refused(study, subjects, personas, tmp_path):
    from django.core.exceptions import PermissionDenied

    path = sheet(tmp_path, subjects, *GOOD)
    with pytest.raises(PermissionDenied):
        run(study, personas["coordinator_a"], path, commit=False)


def test_the_columns_are_suggested_from_the_headers():
    spec = suggest(HEAD.split(","))
    assert {k: v for k, v in spec.items() if k.endswith("_column")} == {
        "subject_column": "Subject",
        "date_column": "Scan date",
        "event_column": "Visit",
        "lesion_column": "Lesion ID",
        "type_column": "Measurement",
        "value_column": "Value",
        "unit_column": "Unit",
        "site_column": "Finding site",
        "node_column": "Lymph node",
        "reader_column": "Reader",
    }


@pytest.mark.django_db
def test_the_command_reports_problems_and_stores_a_good_sheet_once(
    study, subjects, personas, tmp_path, capsys
):
    bad = sheet(tmp_path, subjects, "{a},2025-03-01,,L1,long axis,30,MM,,,R1", name="bad.csv")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_measurements", str(bad), study=study.slug, user="data_manager")
    assert "'MM' is not a UCUM unit; write 'mm'." in capsys.readouterr().out
    good = sheet(tmp_path, subjects, *GOOD, name="good.csv")
    call_command("import_measurements", str(good), study=study.slug, user="data_manager", dry_run=True)
    assert "would store 3 reading(s)" in capsys.readouterr().out
    assert not MeasurementReport.objects.exists()
    call_command("import_measurements", str(good), study=study.slug, user="data_manager")
    call_command("import_measurements", str(good), study=study.slug, user="data_manager")
    out = capsys.readouterr().out
    assert "stored 3 reading(s), 0 already stored" in out and "stored 0 reading(s), 3 already stored" in out
    assert MeasurementReport.objects.count() == 3


@pytest.mark.django_db
def test_the_import_page_takes_a_measurement_sheet_through_dry_run_and_import(
    client, study, subjects, personas, tmp_path, media, django_capture_on_commit_callbacks
):
    path = sheet(tmp_path, subjects, *GOOD)
    client.force_login(personas["data_manager"])
    response = client.post(
        reverse("imports:index", args=[study.slug]),
        {"file": SimpleUploadedFile("m.csv", path.read_bytes()), "kind": "measurements"},
    )
    upload = ImportUpload.objects.get()
    assert upload.kind == "measurements"
    page = client.get(response.url).content.decode()
    assert '<option value="Lesion ID" selected>' in page  # suggested from the header
    fields = {k: v for k, v in MAPPING.to_spec().items() if v not in ("", None)}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(response.url, {**fields, "action": "dry_run"})
    assert "/imports/jobs/" in response.url
    upload.refresh_from_db()
    assert upload.report["counts"]["new"] == 3 and not MeasurementReport.objects.exists()
    url = reverse("imports:upload", args=[study.slug, upload.pk])
    assert 'value="commit"' in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {**fields, "action": "commit"})
    assert MeasurementReport.objects.count() == 3
    assert client.get(reverse("imports:report", args=[study.slug, upload.pk])).status_code == 200


@pytest.mark.django_db
def test_an_xlsx_sheet_with_date_number_and_boolean_cells_is_read_as_typed(
    study, subjects, personas, tmp_path
):
    from tests.imports.conftest import write_xlsx

    a = subjects["a"]
    rows = [
        HEAD.split(","),
        [a.subject_id, dt.date(2025, 3, 1), None, "N1", "short axis", 12.5, "mm", "Neck", True, "R1"],
        [a.subject_id, dt.date(2025, 4, 20), None, "N1", "short axis", 8, "mm", "Neck", True, "R1"],
    ]
    path = write_xlsx(tmp_path / "m.xlsx", rows)
    report = measurement_sheet.run_import(
        actor=personas["data_manager"], study=study, path=path, mapping=MAPPING, commit=True
    )
    assert report["counts"]["problems"] == 0 and report["counts"]["new"] == 2
    values = sorted(Measurement.objects.values_list("report__event", "value"))
    assert values == [("baseline", Decimal("12.5")), ("week_8", Decimal("8"))]  # day 50: in week_8's window
    assert Lesion.objects.get(subject=a).is_node


@pytest.mark.django_db
def test_a_resaved_sheet_with_the_same_values_stores_nothing(study, subjects, personas, tmp_path):
    run(study, personas["data_manager"], sheet(tmp_path, subjects, *GOOD), commit=True)
    # Another file (rows in another order, 30 written 30.0): the same readings.
    resaved = sheet(
        tmp_path, subjects, *reversed(GOOD[1:]), GOOD[0].replace(",30,", ",30.0,"), name="resaved.csv"
    )
    report = run(study, personas["data_manager"], resaved, commit=True)
    assert (report["counts"]["new"], report["counts"]["unchanged"], report["counts"]["warnings"]) == (0, 3, 0)
    assert MeasurementReport.objects.count() == 3


@pytest.mark.django_db
def test_a_corrected_sheet_supersedes_the_reading_it_corrects(study, subjects, personas, tmp_path):
    a = subjects["a"]
    run(study, personas["data_manager"], sheet(tmp_path, subjects, *GOOD), commit=True)
    first = MeasurementReport.objects.get(subject=a, event="baseline")
    corrected = sheet(tmp_path, subjects, GOOD[0].replace(",30,", ",32,"), *GOOD[1:], name="corrected.csv")
    report = run(study, personas["data_manager"], corrected, commit=False)
    assert (report["counts"]["new"], report["counts"]["unchanged"]) == (1, 2)
    assert [(p["row"], p["severity"]) for p in report["problems"]] == [(2, "warning")]
    assert (
        "Corrects the reading" in report["problems"][0]["reason"]
        and "sheet.csv" in report["problems"][0]["reason"]
    )
    run(study, personas["data_manager"], corrected, commit=True)
    first.refresh_from_db()
    newer = first.superseded_by
    assert newer.source == "corrected.csv"
    assert Measurement.objects.get(report=newer, lesion__tracking_id="L1").value == Decimal("32")


@pytest.mark.django_db
def test_a_stored_sheet_updates_the_subjects_responses(study, subjects, personas, tmp_path):
    from capture.measurements import designation
    from capture.measurements.models import TimepointResponse

    a = subjects["a"]
    run(study, personas["data_manager"], sheet(tmp_path, subjects, *GOOD[:2]), commit=True)
    target = Lesion.objects.get(subject=a, tracking_id="L1")
    designation.designate(actor=personas["data_manager"], subject=a, roles={target.pk: Lesion.TARGET})
    # The follow-up arrives by sheet: L1 from 30 to 20 mm (-33 %), a partial response.
    follow_up = sheet(tmp_path, subjects, "{a},,week_8,L1,long axis,20,mm,,,R1", name="week8.csv")
    run(study, personas["data_manager"], follow_up, commit=True)
    overall = dict(
        TimepointResponse.objects.filter(subject=a, method="recist11").values_list("day", "overall")
    )
    assert overall == {0: "", 56: "PR"}
