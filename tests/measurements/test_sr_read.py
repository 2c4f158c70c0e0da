"""Reading TID 1500 reports with highdicom: the values, codes and references a report carries, and
the per-file refusals of malformed ones. Expected numbers are those written in srfixtures.py."""

from decimal import Decimal

import pytest

from capture.measurements import sr

from . import srfixtures


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr")
    return {
        "series": srfixtures.patient_series(root),
        "bad": srfixtures.malformed(root / "bad"),
    }


def values_of(path):
    report = sr.read_report(str(path))
    assert isinstance(report, sr.ParsedReport), report
    return report, {(v.tracking_id, v.concept.meaning): v for v in report.values}


def test_it_reads_every_measurement_group_with_its_codes_and_ucum_units(written):
    report, values = values_of(written["series"][0])
    assert sorted(values) == [
        ("L1", "Long axis"),
        ("L2", "Long axis"),
        ("N1", "Long axis"),
        ("N1", "Short axis"),
    ]
    l1 = values[("L1", "Long axis")]
    assert l1.value == Decimal("30") and l1.unit == "mm"
    assert l1.concept == sr.Code("SCT", "103339001", "Long axis")
    assert l1.finding == sr.Code("SCT", "52988006", "Lesion")
    assert l1.site == sr.Code("SCT", "10200004", "Liver")
    assert l1.tracking_uid == srfixtures.tracking_uid(srfixtures.PATIENT, "L1")
    assert values[("N1", "Short axis")].value == Decimal("15")
    assert report.date == "20250301" and report.patient_id == "MRN-SR-1"


def test_a_lymph_node_is_known_by_its_finding_site_code(written):
    _report, values = values_of(written["series"][1])
    assert values[("N1", "Short axis")].is_node and values[("N1", "Long axis")].is_node
    assert not values[("L1", "Long axis")].is_node
    assert sr.is_node(sr.Code("SCT", "30746006", "Lymphadenopathy"))
    assert sr.is_node(sr.Code("SCT", "68171009", "Axillary lymph node"))
    assert not sr.is_node(sr.Code("SCT", "10200004", "Liver"), None)


def test_each_value_names_the_image_series_it_was_measured_on(written):
    import pydicom

    report, values = values_of(written["series"][2])
    image = pydicom.dcmread(written["series"][2].parent.parent / "images" / "fu2.dcm")
    assert {v.referenced_series_uid for v in values.values()} == {str(image.SeriesInstanceUID)}
    assert report.referenced_studies == [str(image.StudyInstanceUID)]
    assert ("L4", "Long axis") in values  # the new lesion of follow-up 2


def test_the_observer_is_read_for_labelling_and_free_text_is_counted(written):
    report, _values = values_of(written["series"][0])
    assert report.observers == ["person:Smith^Jane"]
    assert report.free_text == 0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("template", "template TID 2000, not TID 1500"),
        ("references", "missing references"),
        ("unit", "units must be coded in UCUM"),
    ],
)
def test_a_malformed_report_is_refused_with_the_reason(written, kind, expected):
    result = sr.read_report(str(written["bad"][kind]))
    assert isinstance(result, sr.Failure)
    assert expected in result.reason
    assert result.path.endswith(f"{kind}.dcm")


def test_the_unit_refusal_names_the_group_the_concept_and_the_scheme(written):
    result = sr.read_report(str(written["bad"]["unit"]))
    assert result.reason.startswith(
        "measurement group 1 (L1): Long axis has the unit 'mm[Hg]' of coding scheme 99LOCAL"
    )


def test_an_image_and_a_text_file_are_not_reports(tmp_path):
    srfixtures.ct_image(tmp_path / "ct.dcm", patient_id="X", study_date="20250101", seed="x")
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a structured report" in sr.read_report(str(tmp_path / "ct.dcm")).reason
    assert "not a DICOM file" in sr.read_report(str(tmp_path / "notes.txt")).reason
