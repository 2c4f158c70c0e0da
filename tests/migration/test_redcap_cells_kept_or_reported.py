"""What a migration does with cells it could change or leave out: a free text keeps the spaces around
it (REDCap keeps them, and the export gives them back); other values are trimmed and the report says
how many per column; `[instrument]_timestamp` and `redcap_survey_identifier` columns are named as not
imported, never dropped without a word."""

from __future__ import annotations

import pytest

from capture.migration.redcap import migrate
from capture.records.models import FormRecord
from tests.migration.test_redcap_round_trip import _rows, export

DICTIONARY = (
    "field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,"
    "text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,"
    "branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,"
    "field_annotation\n"
    "record_id,survey,,text,Record ID,,,,,,,,,,,,,\n"
    "note,survey,,notes,Note,,,,,,,,,,,,,\n"
    "place,survey,,text,Place,,,,,,,,,,,,,\n"
    "age,survey,,text,Age,,,integer,,,,,,,,,,\n"
)
RECORDS = (
    "record_id,redcap_survey_identifier,survey_timestamp,note,place,age,survey_complete\n"
    '1,,2024-01-02 10:00:00,"  two spaces before, one after ",Lyon ,42 ,2\n'
    "2,,[not completed],plain, Paris, 7,0\n"
)
EXPORTED = "record_id,note,place,age,survey_complete\n" + (
    '1,"  two spaces before, one after ",Lyon ,42,2\n2,plain, Paris,7,0\n'
)


@pytest.fixture
def boss(make_user):
    return make_user("boss", is_staff=True)


def _migrate(boss, records=RECORDS):
    return migrate(
        user=boss,
        slug="spaces",
        files=[("dictionary.csv", DICTIONARY.encode()), ("records.csv", records.encode())],
    )


def test_free_text_keeps_its_spaces_and_comes_back_as_redcap_exported_it(client, boss):
    report = _migrate(boss)
    assert report.ok, "\n".join(report.lines())
    data = dict(
        FormRecord.objects.filter(subject__study=report.study).values_list("subject__subject_id", "data")
    )
    assert data["1"]["note"] == "  two spaces before, one after "
    assert (data["1"]["place"], data["2"]["place"], data["1"]["age"]) == ("Lyon ", " Paris", 42)
    assert export(client, boss, report.study) == _rows(EXPORTED)


def test_trimmed_values_timestamps_and_survey_identifiers_are_named_in_the_report(boss):
    report = _migrate(boss)
    assert "column 'age': the spaces around 2 values were trimmed (not free text)." in report.notes
    assert (
        "not imported (survey metadata, not data): redcap_survey_identifier, survey_timestamp" in report.notes
    )
    assert not any("note" in n or "place" in n for n in report.notes if "trimmed" in n)
