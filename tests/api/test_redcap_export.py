"""The REDCap endpoint's exports: dictionary, field names, events, records in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest

URL = "/redcap/api/"


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


@pytest.fixture
def admin_token(redcap_tokens):
    return redcap_tokens["admin"]


@pytest.mark.redcap("version", "export")
def test_it_answers_the_version_as_plain_text(client, admin_token):
    response = post(client, admin_token, content="version")
    assert response.status_code == 200
    assert response.content.decode().count(".") == 2


@pytest.mark.redcap("metadata", "export")
def test_it_exports_metadata_with_the_18_keys_and_record_id_first(client, admin_token, study):
    rows = post(client, admin_token, content="metadata", format="json").json()
    assert list(rows[0]) == [
        "field_name",
        "form_name",
        "section_header",
        "field_type",
        "field_label",
        "select_choices_or_calculations",
        "field_note",
        "text_validation_type_or_show_slider_number",
        "text_validation_min",
        "text_validation_max",
        "identifier",
        "branching_logic",
        "required_field",
        "custom_alignment",
        "question_number",
        "matrix_group_name",
        "matrix_ranking",
        "field_annotation",
    ]
    assert rows[0]["field_name"] == "record_id"
    by_name = {r["field_name"]: r for r in rows}
    assert by_name["sex"]["field_type"] == "radio"
    assert by_name["sex"]["select_choices_or_calculations"] == "1, Female | 2, Male"
    assert by_name["symptoms"]["field_type"] == "checkbox"
    assert by_name["initials"]["identifier"] == "y"
    assert by_name["age"]["text_validation_type_or_show_slider_number"] == "integer"
    assert by_name["age"]["text_validation_max"] == "120"
    assert by_name["weight"]["text_validation_type_or_show_slider_number"] == "number_1dp"
    assert by_name["smoker"]["field_type"] == "yesno"
    assert by_name["visit_date"]["text_validation_type_or_show_slider_number"] == "date_ymd"
    assert by_name["er_status"]["matrix_group_name"] == "receptors"
    assert [n for n in by_name if n.startswith("lesion_site_")] == [
        "lesion_site_1",
        "lesion_site_2",
        "lesion_site_3",
    ]


@pytest.mark.redcap("metadata", "export")
def test_it_filters_metadata_by_forms(client, admin_token, study):
    rows = post(client, admin_token, content="metadata", format="json", **{"forms[0]": "animal"}).json()
    assert {r["form_name"] for r in rows} == {"animal"}


@pytest.mark.redcap("exportFieldNames", "export")
def test_it_exports_checkbox_field_names_with_triple_underscore(client, admin_token, study):
    rows = post(client, admin_token, content="exportFieldNames", format="json").json()
    symptoms = [r for r in rows if r["original_field_name"] == "symptoms"]
    assert [r["export_field_name"] for r in symptoms] == [
        "symptoms___pain",
        "symptoms___fatigue",
        "symptoms___nausea",
    ]
    assert rows[0]["export_field_name"] == "record_id"


@pytest.mark.redcap("instrument", "export")
@pytest.mark.redcap("event", "export")
@pytest.mark.redcap("arm", "export")
@pytest.mark.redcap("formEventMapping", "export")
@pytest.mark.redcap("repeatingFormsEvents", "export")
def test_it_exports_instruments_events_arms_and_mappings(client, admin_token, study):
    instruments = post(client, admin_token, content="instrument", format="json").json()
    assert [i["instrument_name"] for i in instruments] == ["demographics", "lesions", "animal"]
    events = post(client, admin_token, content="event", format="json").json()
    assert [e["unique_event_name"] for e in events] == ["baseline_arm_1", "week_8_arm_1", "implant_arm_2"]
    arms = post(client, admin_token, content="arm", format="json").json()
    assert arms == [{"arm_num": 1, "name": "Patients"}, {"arm_num": 2, "name": "Models"}]
    mapping = post(client, admin_token, content="formEventMapping", format="json").json()
    assert {"arm_num": 1, "unique_event_name": "week_8_arm_1", "form": "lesions"} in mapping
    repeating = post(client, admin_token, content="repeatingFormsEvents", format="json").json()
    assert repeating == [{"event_name": "week_8_arm_1", "form_name": "lesions", "custom_form_label": ""}]


@pytest.mark.redcap("formEventMapping", "export")
@pytest.mark.redcap("project", "export")
def test_it_refuses_form_event_mapping_on_a_classic_project(client, personas, classic_study):
    from capture.api.tokens import create_redcap_token

    _, token = create_redcap_token(user=personas["admin"], study=classic_study)
    response = post(client, token, content="formEventMapping", format="json")
    assert response.status_code == 400
    assert "error" in response.json()
    info = post(client, token, content="project", format="json").json()
    assert info["is_longitudinal"] == 0
    assert info["has_repeating_instruments_or_events"] == 1


@pytest.mark.redcap("project", "export")
def test_it_exports_project_info(client, admin_token, study):
    info = post(client, admin_token, content="project", format="json").json()
    assert info["project_title"] == "Trial"
    assert info["is_longitudinal"] == 1


@pytest.mark.redcap("record", "export")
def test_it_exports_flat_records_in_redcap_column_order(client, admin_token, records):
    rows = post(client, admin_token, content="record", format="json", type="flat").json()
    assert list(rows[0])[:4] == [
        "record_id",
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
    ]
    columns = list(rows[0])
    assert (
        columns.index("demographics_complete")
        < columns.index("visit_date")
        < columns.index("lesions_complete")
    )
    a_base = next(
        r for r in rows if r["record_id"] == "A-0001" and r["redcap_event_name"] == "baseline_arm_1"
    )
    assert a_base["initials"] == "ABC"
    assert a_base["symptoms___pain"] == "1" and a_base["symptoms___fatigue"] == "0"
    assert a_base["weight"] == "71.5"
    assert a_base["smoker"] == "1"
    assert a_base["demographics_complete"] == "2"
    assert a_base["lesion_site_1"] == "liver" and a_base["lesion_diameter_1"] == "12.5"
    repeats = [r for r in rows if r["redcap_repeat_instrument"] == "lesions"]
    assert [(r["redcap_event_name"], r["redcap_repeat_instance"]) for r in repeats] == [
        ("week_8_arm_1", "1"),
        ("week_8_arm_1", "2"),
    ]
    assert repeats[0]["initials"] == ""


@pytest.mark.redcap("record", "export")
def test_it_exports_csv_and_xml(client, admin_token, records):
    text = post(client, admin_token, content="record", format="csv").content.decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert {r["record_id"] for r in table} == {"A-0001", "B-0001", "A-0002"}
    xml = post(client, admin_token, content="record", format="xml").content.decode()
    assert xml.startswith("<?xml") and "<record_id><![CDATA[A-0001]]></record_id>" in xml


@pytest.mark.redcap("record", "export")
def test_it_accepts_lists_as_indexed_arrays_and_comma_lists(client, admin_token, records):
    indexed = post(
        client,
        admin_token,
        content="record",
        format="json",
        **{"fields[0]": "record_id", "fields[1]": "age", "records[0]": "B-0001"},
    ).json()
    comma = post(
        client, admin_token, content="record", format="json", fields="record_id,age", records="B-0001"
    ).json()
    assert indexed == comma
    assert indexed == [
        {
            "record_id": "B-0001",
            "redcap_event_name": "baseline_arm_1",
            "redcap_repeat_instrument": "",
            "redcap_repeat_instance": "",
            "age": "54",
        }
    ]


@pytest.mark.redcap("record", "export")
def test_it_exports_labels_and_label_headers(client, admin_token, records):
    rows = post(
        client,
        admin_token,
        content="record",
        format="json",
        rawOrLabel="label",
        records="A-0001",
        forms="demographics",
    ).json()
    assert rows[0]["sex"] == "Female"
    assert rows[0]["symptoms___pain"] == "Checked"
    assert rows[0]["demographics_complete"] == "Complete"
    labelled = post(
        client,
        admin_token,
        content="record",
        format="json",
        rawOrLabel="label",
        records="A-0001",
        forms="demographics",
        exportCheckboxLabel="true",
    ).json()
    assert labelled[0]["symptoms___pain"] == "Pain" and labelled[0]["symptoms___fatigue"] == ""
    text = post(
        client,
        admin_token,
        content="record",
        format="csv",
        rawOrLabelHeaders="label",
        records="A-0001",
        forms="demographics",
    ).content.decode()
    header = text.splitlines()[0]
    assert header.startswith("Subject ID,Event Name") and "Symptoms (choice=Pain)" in header


@pytest.mark.redcap("record", "export")
def test_it_exports_eav(client, admin_token, records):
    rows = post(
        client,
        admin_token,
        content="record",
        format="json",
        type="eav",
        records="A-0001",
        forms="demographics",
    ).json()
    assert {
        "record": "A-0001",
        "redcap_event_name": "baseline_arm_1",
        "redcap_repeat_instrument": "",
        "redcap_repeat_instance": "",
        "field_name": "symptoms",
        "value": "pain",
    } in rows
    assert not any(r["field_name"] == "symptoms" and r["value"] == "fatigue" for r in rows)


@pytest.mark.redcap("record", "export")
def test_it_adds_data_access_groups_when_asked(client, admin_token, records):
    rows = post(
        client,
        admin_token,
        content="record",
        format="json",
        exportDataAccessGroups="True",
        fields="record_id",
    ).json()
    assert list(rows[0])[4] == "redcap_data_access_group"
    assert {r["record_id"]: r["redcap_data_access_group"] for r in rows}["B-0001"] == "b"


@pytest.mark.redcap("record", "export")
def test_it_filters_by_date_range_of_changes(client, admin_token, records):
    rows = post(
        client, admin_token, content="record", format="json", dateRangeBegin="2999-01-01 00:00:00"
    ).json()
    assert rows == []
    rows = post(
        client, admin_token, content="record", format="json", dateRangeBegin="2000-01-01 00:00:00"
    ).json()
    assert rows


@pytest.mark.redcap(
    "record",
    "export",
    differs="a de-identified reader's dates are shifted per subject, where REDCap's de-identified export removes date fields",
)
def test_it_gives_a_statistician_de_identified_records(client, redcap_tokens, records, subjects):
    rows = post(client, redcap_tokens["statistician"], content="record", format="json").json()
    assert rows and not any("initials" in r for r in rows)
    a_base = next(
        r for r in rows if r["record_id"] == "A-0001" and r["redcap_event_name"] == "baseline_arm_1"
    )
    import datetime as dt

    shifted = dt.date(2025, 3, 2) + dt.timedelta(days=subjects["a"].date_shift_days)
    assert a_base["visit_date"] == shifted.isoformat()
    eav = post(client, redcap_tokens["statistician"], content="record", format="json", type="eav").json()
    assert not any(r["field_name"] == "initials" for r in eav)
    assert "ABC" not in json.dumps(eav)


@pytest.mark.redcap("record", "export")
@pytest.mark.redcap("dag", "export", differs="the sites the user sees; REDCap lists every DAG")
def test_it_shows_a_site_coordinator_only_their_sites_records(client, redcap_tokens, records):
    rows = post(client, redcap_tokens["coordinator_b"], content="record", format="json").json()
    assert {r["record_id"] for r in rows} == {"B-0001"}
    dags = post(client, redcap_tokens["coordinator_b"], content="dag", format="json").json()
    assert [d["unique_group_name"] for d in dags] == ["b"]


@pytest.mark.redcap("record", "export")
def test_it_refuses_unknown_fields_with_a_redcap_error(client, admin_token, records):
    response = post(client, admin_token, content="record", format="json", fields="nope")
    assert response.status_code == 400
    assert "nope" in response.json()["error"]
    csv_error = post(client, admin_token, content="record", format="csv", fields="nope")
    assert csv_error.content.decode().startswith("ERROR:")
    xml_error = post(client, admin_token, content="record", fields="nope")
    assert "<error>" in xml_error.content.decode()


@pytest.mark.redcap("record", "export")
def test_it_filters_rows_with_filter_logic(client, admin_token, records):
    rows = post(
        client,
        admin_token,
        content="record",
        format="json",
        fields="record_id",
        filterLogic="[sex] = '2' and [age] >= 18",
    ).json()
    assert [r["record_id"] for r in rows] == ["B-0001"]
    checkbox = post(
        client,
        admin_token,
        content="record",
        format="json",
        fields="record_id",
        filterLogic="[symptoms(pain)] = '1'",
    ).json()
    assert {r["record_id"] for r in checkbox} == {"A-0001", "B-0001"}
    bad = post(client, admin_token, content="record", format="json", filterLogic="[sex] = = 2")
    assert bad.status_code == 400 and "filterLogic" in bad.json()["error"]


@pytest.mark.redcap("record", "export")
def test_filter_logic_cannot_probe_identifiers_it_may_not_see(client, redcap_tokens, records):
    rows = post(
        client,
        redcap_tokens["statistician"],
        content="record",
        format="json",
        fields="record_id",
        filterLogic="[initials] = 'ABC'",
    ).json()
    assert rows == []
