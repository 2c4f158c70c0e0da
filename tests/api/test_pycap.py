"""PyCap, unchanged, against a live Capture: a longitudinal study with repeating instruments and a
classic one. If PyCap can do it against REDCap, it must work here."""

from __future__ import annotations

import pytest
from redcap import Project, RedcapError
from redcap import request as redcap_request

from capture.api.tokens import create_redcap_token
from capture.records.models import FormRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def url(live_server, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield f"{live_server.url}/redcap/api/"
    # PyCap keeps one module-level keep-alive session; close it before the live server stops, or the
    # server's request thread dies noisily at interpreter exit.
    redcap_request._session.close()


@pytest.fixture
def trial(url, records, redcap_tokens):
    return Project(url, redcap_tokens["admin"])


@pytest.mark.redcap("version", "export")
@pytest.mark.redcap("project", "export")
@pytest.mark.redcap("metadata", "export")
@pytest.mark.redcap("exportFieldNames", "export")
@pytest.mark.redcap("formEventMapping", "export")
@pytest.mark.redcap("repeatingFormsEvents", "export")
def test_pycap_reads_version_project_and_dictionary(trial):
    assert str(trial.export_version()).count(".") == 2
    assert trial.export_project_info()["project_title"] == "Trial"
    assert trial.def_field == "record_id"
    assert trial.is_longitudinal is True
    assert "demographics" in trial.forms
    metadata = trial.export_metadata(format_type="df")
    assert metadata.loc["initials", "identifier"] == "y"
    names = trial.export_field_names()
    assert {
        "original_field_name": "symptoms",
        "choice_value": "pain",
        "export_field_name": "symptoms___pain",
    } in names
    mappings = trial.export_instrument_event_mappings()
    assert {"arm_num": 2, "unique_event_name": "implant_arm_2", "form": "animal"} in mappings
    assert trial.export_repeating_instruments_events() == [
        {"event_name": "week_8_arm_1", "form_name": "lesions", "custom_form_label": ""}
    ]


@pytest.mark.redcap("record", "export")
def test_pycap_exports_records_as_json_csv_and_dataframe(trial):
    rows = trial.export_records()
    assert {r["record_id"] for r in rows} == {"A-0001", "B-0001", "A-0002"}
    text = trial.export_records(format_type="csv", fields=["record_id", "age"], records=["A-0001"])
    assert (
        text.splitlines()[0]
        == "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,age"
    )
    frame = trial.export_records(format_type="df", forms=["demographics"])
    assert list(frame.index.names) == ["record_id", "redcap_event_name"]
    assert frame.loc[("B-0001", "baseline_arm_1"), "initials"] == "XYZ"
    labelled = trial.export_records(raw_or_label="label", records=["A-0001"], forms=["demographics"])
    assert labelled[0]["sex"] == "Female"


@pytest.mark.redcap("record", "import")
@pytest.mark.redcap("record", "delete")
def test_pycap_imports_and_deletes_records(trial, subjects):
    result = trial.import_records(
        [
            {"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "61"},
            {
                "record_id": "A-0001",
                "redcap_event_name": "week_8_arm_1",
                "redcap_repeat_instrument": "lesions",
                "redcap_repeat_instance": "new",
                "visit_date": "2025-06-01",
            },
        ]
    )
    assert result == {"count": 2}
    assert FormRecord.objects.get(subject=subjects["b"], form_name="demographics").data["age"] == 61
    assert FormRecord.objects.filter(subject=subjects["a"], event__name="week_8").count() == 3
    ids = trial.import_records(
        [{"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "weight": "80.1"}],
        return_content="ids",
    )
    assert ids == ["B-0001"]
    frame = trial.export_records(format_type="df", records=["B-0001"], forms=["demographics"])
    frame["age"] = 62
    # PyCap writes a frame's index only when it has one name; a longitudinal frame has two (as with REDCap).
    assert trial.import_records(frame.reset_index(), import_format="df") == {"count": 1}
    assert FormRecord.objects.get(subject=subjects["b"], form_name="demographics").data["age"] == 62
    assert trial.delete_records(["B-0001"]) == 1
    assert not FormRecord.objects.filter(subject=subjects["b"]).exists()


@pytest.mark.redcap("record", "import")
def test_pycap_sees_errors_as_redcap_errors(trial, url, redcap_tokens):
    with pytest.raises(RedcapError, match="age"):
        trial.import_records([{"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "500"}])
    with pytest.raises(RedcapError):
        Project(url, "0" * 32).export_project_info()


@pytest.mark.redcap(
    "record",
    "export",
    differs="a de-identified reader's dates are shifted per subject, where REDCap's de-identified export removes date fields",
)
def test_a_statisticians_pycap_gets_no_identifier(url, records, redcap_tokens):
    project = Project(url, redcap_tokens["statistician"])
    frame = project.export_records(format_type="df")
    assert "initials" not in frame.columns
    with pytest.raises(RedcapError, match="privileges"):
        project.import_records([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "1"}])


@pytest.mark.redcap("record", "export")
@pytest.mark.redcap("record", "import")
@pytest.mark.redcap("formEventMapping", "export")
def test_pycap_works_with_a_classic_project(url, classic_study, personas):
    _, token = create_redcap_token(user=personas["admin"], study=classic_study)
    project = Project(url, token)
    assert project.is_longitudinal is False
    with pytest.raises(RedcapError):
        project.export_instrument_event_mappings()
    frame = project.export_records(format_type="df")
    assert frame.index.name == "record_id"
    assert list(frame["redcap_repeat_instance"].fillna(0).astype(int)) == [0, 1, 2]
    result = project.import_records(
        [
            {
                "record_id": "C-0001",
                "redcap_repeat_instrument": "lesions",
                "redcap_repeat_instance": "new",
                "visit_date": "2025-03-01",
                "lesion_site_1": "lung",
                "lesion_diameter_1": "8.5",
            }
        ]
    )
    assert result == {"count": 1}
    record = FormRecord.objects.get(subject__study=classic_study, form_name="lesions", instance=3)
    assert record.data["target_lesions"] == [{"lesion_site": "lung", "lesion_diameter": 8.5}]
    statistician = Project(url, create_redcap_token(user=personas["statistician"], study=classic_study)[1])
    assert "initials" not in statistician.export_records(format_type="df").columns


@pytest.mark.redcap("user", "export")
@pytest.mark.redcap("userRole", "export")
@pytest.mark.redcap("userRoleMapping", "export")
@pytest.mark.redcap("log", "export")
def test_pycap_reads_rights_roles_and_filtered_logging(trial, url, redcap_tokens):
    users = {u["username"]: u for u in trial.export_users()}
    assert (users["data_manager"]["data_export"], users["monitor"]["data_export"]) == (1, 2)
    assert users["coordinator_a"]["data_access_group"] == "a"
    roles = {r["unique_role_name"]: r["role_label"] for r in trial.export_user_roles()}
    assert roles["data_manager"] == "Data manager"
    assignment = {r["username"]: r["unique_role_name"] for r in trial.export_user_role_assignment()}
    assert assignment["pi"] == "pi"
    added = trial.export_logging(log_type="record_add", dag="b")
    assert added and {r["record"] for r in added} == {"B-0001"}
    assert all(r["action"].startswith("Created Record") for r in added)
    monitor = Project(url, redcap_tokens["monitor"])
    with pytest.raises(RedcapError, match="Import"):
        monitor.import_records([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "1"}])


@pytest.mark.redcap("record", "export")
@pytest.mark.redcap("record", "import")
@pytest.mark.redcap("record", "delete")
def test_pycap_filters_on_form_status_imports_xml_and_deletes(trial, subjects):
    complete = trial.export_records(filter_logic="[demographics_complete] = '2'", fields=["record_id"])
    assert [r["record_id"] for r in complete] == ["A-0001"]
    xml = (
        '<?xml version="1.0" encoding="UTF-8" ?><records><item><record_id>B-0001</record_id>'
        "<redcap_event_name>baseline_arm_1</redcap_event_name><age><![CDATA[63]]></age></item></records>"
    )
    assert trial.import_records(xml, import_format="xml") == {"count": 1}
    assert FormRecord.objects.get(subject=subjects["b"], form_name="demographics").data["age"] == 63
    assert trial.delete_records(["B-0001"], return_format_type="xml") == "1"
