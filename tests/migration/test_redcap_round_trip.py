"""Issue 13's round trip: a REDCap project's own files, migrated with import_redcap_project, come back
from the REDCap API's flat CSV export (raw, over HTTP with a token) row for row and cell for cell as
REDCap's own records file, ignoring only number formatting (1.0 = 1) and file-upload contents."""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

import pytest

from capture.api import tokens
from capture.migration.redcap import migrate
from tests.conftest import ROOT, SHARED
from tests.requirements import need_shared

REDCAP = SHARED / "data" / "redcap"
ODM = SHARED / "data" / "odm"
OWN = ROOT / "fixtures" / "interop" / "redcap"
URL = "/redcap/api/"
ROW_KEY = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


def _files(*paths) -> list[tuple[str, bytes]]:
    return [(path.name, need_shared(path).read_bytes()) for path in paths]


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a.replace(",", ".")) == Decimal(b.replace(",", "."))
    except InvalidOperation:
        return False


def export(client, user, study) -> list[dict]:
    token = tokens.create_redcap_token(user=user, study=study)[1]
    response = client.post(
        URL, {"token": token, "content": "record", "format": "csv", "type": "flat", "rawOrLabel": "raw"}
    )
    assert response.status_code == 200, response.content[:500]
    return _rows(
        b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    )


def _same_text(a: str, b: str, spaces: bool) -> bool:
    # A text's surrounding spaces come back as REDCap exported them. `spaces`: REDCap's project XML
    # writes a text's line breaks as spaces, so its runs of white space differ from its CSV's.
    if spaces:
        return " ".join(a.split()) == " ".join(b.split())
    return a == b


def assert_same_records(
    exported: list[dict], expected: list[dict], file_fields: set[str] = frozenset(), spaces: bool = False
) -> None:
    """Same header, same rows (record, event, repeat instrument, instance) in order, same cells."""
    assert expected and exported, "both files have records"
    assert list(exported[0]) == list(expected[0])
    record_id = next(iter(expected[0]))

    def key(row):
        return (row[record_id], *(row.get(k, "") for k in ROW_KEY))

    assert [key(r) for r in exported] == [key(r) for r in expected]
    differences = [
        (key(want), column, got.get(column), value)
        for got, want in zip(exported, expected, strict=True)
        for column, value in want.items()
        if column not in file_fields
        and not _same_text(got.get(column) or "", value, spaces)
        and not _same_number(got.get(column) or "", value)
    ]
    assert differences == [], f"(row, column, exported, REDCap's): {differences[:20]}"


def _migrated(user, slug, files, **options):
    report = migrate(user=user, slug=slug, files=files, **options)
    assert report.ok, "\n".join(report.lines())
    return report


@pytest.fixture
def boss(make_user):
    return make_user("boss", is_staff=True)


SIMPLE_FIX = {"sex": {"TRUE": "1", "FALSE": "0"}}


@pytest.mark.parametrize(
    ("project", "value_map", "file_fields"),
    [
        ("simple", SIMPLE_FIX, {"mugshot"}),
        ("repeating", None, set()),
        ("checkboxes", None, set()),
        ("validation_types", None, {"f_file_upload", "f_signature"}),
    ],
)
def test_a_classic_project_comes_back_cell_for_cell(client, boss, project, value_map, file_fields):
    dictionary, data = REDCAP / f"redcapr_{project}_dictionary.csv", REDCAP / f"redcapr_{project}_data.csv"
    report = _migrated(boss, project, _files(dictionary, data), value_map=value_map)
    expected = _rows(data.read_text("utf-8"))
    for row in expected:  # REDCap's file, with the values the map fixed (R's TRUE/FALSE for codes 1/0)
        for column, mapping in (value_map or {}).items():
            row[column] = mapping.get(row[column], row[column])
    assert_same_records(export(client, boss, report.study), expected, file_fields)


def test_the_longitudinal_project_comes_back_from_its_dictionary_arms_events_and_mapping(client, boss):
    data = REDCAP / "redcapr_longitudinal_data.csv"
    files = _files(
        REDCAP / "redcapr_longitudinal_dictionary.csv",
        REDCAP / "redcapr_longitudinal_arm.csv",
        REDCAP / "redcapr_longitudinal_event.csv",
        data,
    ) + [("mapping.csv", (OWN / "longitudinal_mapping.csv").read_bytes())]
    report = _migrated(boss, "longitudinal", files)
    assert report.study.record_id_field == "study_id"
    assert_same_records(
        export(client, boss, report.study), _rows(data.read_text("utf-8")), {"patient_document"}
    )


def test_the_longitudinal_project_xml_with_its_data_comes_back_alone(client, boss):
    report = _migrated(boss, "longxml", _files(ODM / "redcapr_longitudinal_project.odm.xml"))
    expected = _rows(need_shared(REDCAP / "redcapr_longitudinal_data.csv").read_text("utf-8"))
    assert_same_records(export(client, boss, report.study), expected, {"patient_document"}, spaces=True)


def test_the_project_xml_gives_the_schedule_and_the_csv_the_records(client, boss):
    data = REDCAP / "redcapr_longitudinal_data.csv"
    report = _migrated(boss, "longmix", _files(ODM / "redcapr_longitudinal_project.odm.xml", data))
    assert_same_records(
        export(client, boss, report.study), _rows(data.read_text("utf-8")), {"patient_document"}
    )


def test_the_dry_run_names_each_true_false_cell_of_simple_and_writes_nothing(boss):
    from capture.studies.models import Study

    files = _files(REDCAP / "redcapr_simple_dictionary.csv", REDCAP / "redcapr_simple_data.csv")
    report = migrate(user=boss, slug="simple", files=files, dry_run=True)
    bad = sorted((p.record, p.column, p.value) for p in report.problems)
    # REDCap's own file: records 1 and 4 FALSE, the others TRUE (R wrote the yes/no field as logicals).
    expected = [(str(n), "sex", "FALSE" if n in (1, 4) else "TRUE") for n in range(1, 6)]
    assert bad == sorted(expected)
    assert not Study.objects.filter(slug="simple").exists()
