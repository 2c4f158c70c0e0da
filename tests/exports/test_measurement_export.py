"""Imaging measurements and responses in exports: values worked out by hand, dates shifted (or as
days) for de-identified roles and never real, codes named in the codebook.

Subject a (site A, enrolled 2025-03-01, date shift fixed at -40 days) has an SR read at baseline
(2025-03-01: L1 long axis 30 mm, N1 short axis 15 mm, a lymph node) and one in week 8
(2025-04-26, day 56: L1 24 mm, N1 9 mm), and responses stored as the response computation would."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.measurements.models import BestResponse, Lesion, MeasurementReport, TimepointResponse
from capture.measurements.store import Coded, IncomingReport, MeasuredValue, store_report
from capture.studies.models import Subject

LONG = Coded("SCT", "103339001", "Long Axis")
SHORT = Coded("SCT", "103340004", "Short Axis")
LIVER = Coded("SCT", "10200004", "Liver")
SHIFT = -40
REAL = ("2025-03-01", "2025-04-26")


@pytest.fixture
def measured(study, subjects):
    a = Subject.objects.get(pk=subjects["a"].pk)
    a.date_shift_days = SHIFT
    a.save(update_fields=["date_shift_days"])
    for sop, day, long_mm, short_mm in (("1.2.840.1", 0, "30", "15"), ("1.2.840.2", 56, "24", "9")):
        values = [
            MeasuredValue("L1", LONG, Decimal(long_mm), "mm", site=LIVER, referenced_series_uid="2.25.77"),
            MeasuredValue("N1", SHORT, Decimal(short_mm), "mm", is_node=True),
        ]
        incoming = IncomingReport(
            sop_uid=sop, date=a.enrollment_date + dt.timedelta(days=day), values=values, observer="Dr Who"
        )
        store_report(actor=SYSTEM, study=study, subject=a, incoming=incoming, source_kind="sr", source="x")
    Lesion.objects.filter(subject=a).update(role=Lesion.TARGET)
    week8 = MeasurementReport.objects.get(sop_uid="1.2.840.2")
    TimepointResponse.objects.create(
        study=study, subject=a, method="recist11", event="baseline", day=0, is_baseline=True,
        sum_mm=Decimal("45"), nadir_mm=Decimal("45"), target="", overall="",
        report=MeasurementReport.objects.get(sop_uid="1.2.840.1"),
    )  # fmt: skip
    TimepointResponse.objects.create(
        study=study, subject=a, method="recist11", event="week_8", day=56, sum_mm=Decimal("33"),
        nadir_mm=Decimal("45"), change_from_baseline_pct=-26.67, change_from_nadir_pct=-26.67,
        target="SD", non_target="", new_lesions=False, overall="SD", report=week8,
    )  # fmt: skip
    BestResponse.objects.create(study=study, subject=a, method="recist11", response="SD")
    return a


def _rows(folder, name):
    with (folder / f"{name}.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _all_text(folder) -> str:
    return "".join(p.read_text(encoding="utf-8-sig", errors="replace") for p in folder.glob("*.csv"))


@pytest.mark.django_db
def test_a_statistician_gets_every_value_with_shifted_dates_and_no_real_ones(
    measured, personas, study, run_export
):
    _, manifest, folder = run_export(
        personas["statistician"], study, formats=["csv"], layout="long", measurements=True
    )
    assert [t["name"] for t in manifest["tables"]][-3:] == ["measurements", "responses", "best_responses"]
    rows = _rows(folder, "measurements")
    got = [
        (r["event"], r["day"], r["date"], r["lesion_id"], r["concept"], r["value"], r["unit"]) for r in rows
    ]
    assert got == [
        ("baseline", "0", "2025-01-20", "L1", "SCT:103339001", "30.0", "mm"),
        ("baseline", "0", "2025-01-20", "N1", "SCT:103340004", "15.0", "mm"),
        ("week_8", "56", "2025-03-17", "L1", "SCT:103339001", "24.0", "mm"),
        ("week_8", "56", "2025-03-17", "N1", "SCT:103340004", "9.0", "mm"),
    ]
    first = rows[0]
    assert first["subject_id"] == measured.subject_id and first["site"] == "A"
    assert (first["lesion_role"], first["lymph_node"], rows[1]["lymph_node"]) == ("target", "0", "1")
    assert (first["finding_site"], first["finding_site_code"]) == ("Liver", "SCT:10200004")
    assert (first["measurement"], first["concept_scheme"], first["concept_code"]) == (
        "Long Axis",
        "SCT",
        "103339001",
    )
    assert (first["source_uid"], first["series_uid"], first["current"]) == ("1.2.840.1", "2.25.77", "1")
    assert first["reader"] == ""  # a reader's name is DICOM person text: identified exports only
    responses = _rows(folder, "responses")
    assert [(r["event"], r["day"], r["date"], r["sum_mm"], r["overall_response"]) for r in responses] == [
        ("baseline", "0", "2025-01-20", "45.0", ""),
        ("week_8", "56", "2025-03-17", "33.0", "SD"),
    ]
    assert responses[1]["change_from_baseline_pct"] == "-26.67" and responses[1]["source_uid"] == "1.2.840.2"
    best = _rows(folder, "best_responses")
    assert [(b["subject_id"], b["method"], b["best_response"]) for b in best] == [
        (measured.subject_id, "recist11", "SD")
    ]
    text = _all_text(folder)
    assert not any(day in text for day in REAL), "a real date reached a de-identified export"


@pytest.mark.django_db
def test_an_identified_export_with_real_dates_has_them_and_the_reader(measured, personas, study, run_export):
    _, _, folder = run_export(
        personas["admin"], study, formats=["csv"], measurements=True, identified=True, reason="audit",
        date_mode="none",
    )  # fmt: skip
    rows = _rows(folder, "measurements")
    assert [r["date"] for r in rows] == ["2025-03-01", "2025-03-01", "2025-04-26", "2025-04-26"]
    assert rows[0]["reader"] == "Dr Who"


@pytest.mark.django_db
def test_days_since_enrolment_replace_dates_in_offset_mode(measured, personas, study, run_export):
    _, _, folder = run_export(
        personas["statistician"], study, formats=["csv"], measurements=True, date_mode="offset"
    )
    rows = _rows(folder, "measurements")
    assert "date" not in rows[0] and [r["day"] for r in rows] == ["0", "0", "56", "56"]
    assert "date" not in _rows(folder, "responses")[0]


@pytest.mark.django_db
def test_the_codebook_names_dicom_snomed_ucum_and_nci_codes(measured, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"], measurements=True)
    with (folder / "codebook.csv").open(encoding="utf-8-sig", newline="") as handle:
        book = {(r["table"], r["column"]): r for r in csv.DictReader(handle)}
    assert book[("measurements", "concept")]["concept_codes"] == "SCT:103339001; SCT:103340004"
    assert book[("measurements", "unit")]["permissible_values"] == "mm = millimetre [UCUM:mm]"
    overall = book[("responses", "overall_response")]["permissible_values"]
    assert (
        "PD = Progressive disease [NCIt:C35571]" in overall
        and "CR = Complete response [NCIt:C4870]" in overall
    )


@pytest.mark.django_db
def test_without_the_option_and_outside_the_chosen_sites_there_are_no_measurement_rows(
    measured, personas, study, run_export
):
    _, manifest, _ = run_export(personas["statistician"], study, formats=["csv"], layout="long")
    assert "measurements" not in [t["name"] for t in manifest["tables"]]
    _, manifest, folder = run_export(
        personas["statistician"], study, formats=["csv"], measurements=True, sites=["B"]
    )
    assert _rows(folder, "measurements") == [] and _rows(folder, "responses") == []


@pytest.mark.django_db
def test_the_builder_offers_the_tables_and_the_api_takes_the_option(measured, personas, study, client):
    client.force_login(personas["statistician"])
    page = client.get(reverse("exports:builder", args=[study.slug])).content.decode()
    assert 'name="measurements"' in page and "Imaging measurements and responses" in page
    response = client.post(
        reverse("api:export-create", args=[study.slug]),
        {"measurements": True},
        content_type="application/json",
    )
    assert response.status_code == 202


@pytest.mark.django_db
def test_odm_holds_the_tables_as_forms_of_an_imaging_event_and_validates(
    measured, personas, study, run_export
):
    from lxml import etree

    from capture.exports.writers.odm import NS, validate

    _, _, folder = run_export(personas["statistician"], study, formats=["odm"], measurements=True)
    assert validate(folder / "odm.xml") == []
    tree = etree.parse(str(folder / "odm.xml"))
    ns = {"o": NS}
    values = tree.xpath("//o:ItemData[@ItemOID='I.IMG.MEASUREMENTS.value']/@Value", namespaces=ns)
    assert values == ["30.0", "15.0", "24.0", "9.0"]
    dates = tree.xpath("//o:ItemData[@ItemOID='I.IMG.MEASUREMENTS.date']/@Value", namespaces=ns)
    assert dates == ["2025-01-20", "2025-01-20", "2025-03-17", "2025-03-17"]
    aliases = {(a.get("Context"), a.get("Name")) for a in tree.xpath("//o:CodeList//o:Alias", namespaces=ns)}
    assert {("SCT", "103339001"), ("UCUM", "mm"), ("nci:ExtCodeID", "C35571")} <= aliases
    overall = tree.xpath("//o:ItemData[@ItemOID='I.IMG.RESPONSES.overall_response']/@Value", namespaces=ns)
    assert overall == ["SD"]
    assert not any(day in (folder / "odm.xml").read_text() for day in REAL)


@pytest.mark.django_db
def test_one_concept_spelled_two_ways_is_one_codebook_entry_and_odm_validates(
    measured, personas, study, run_export
):
    from capture.exports.writers.odm import validate

    # Another reader's software writes the same SNOMED code with other capitals.
    incoming = IncomingReport(
        sop_uid="1.2.840.3",
        date=measured.enrollment_date + dt.timedelta(days=84),
        values=[MeasuredValue("L1", Coded("SCT", "103339001", "Long axis"), Decimal("20"), "mm")],
    )
    store_report(actor=SYSTEM, study=study, subject=measured, incoming=incoming, source_kind="sr", source="y")
    _, _, folder = run_export(personas["statistician"], study, formats=["odm"], measurements=True)
    assert validate(folder / "odm.xml") == []
