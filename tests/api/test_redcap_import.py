"""The REDCap endpoint's record import and delete: through the record service, all or nothing."""

from __future__ import annotations

import json

import pytest

from capture.audit.models import AuditEvent
from capture.records.models import FormRecord

URL = "/redcap/api/"


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


def _record(subject, event, form, instance=1):
    return FormRecord.objects.get(subject=subject, event__name=event, form_name=form, instance=instance)


@pytest.mark.redcap("record", "import")
def test_it_imports_json_through_the_record_service(client, redcap_tokens, records, subjects):
    data = [
        {
            "record_id": "B-0001",
            "redcap_event_name": "baseline_arm_1",
            "age": "60",
            "symptoms___fatigue": "1",
            "symptoms___pain": "0",
            "demographics_complete": "1",
        }
    ]
    response = post(
        client,
        redcap_tokens["coordinator_b"],
        content="record",
        action="import",
        format="json",
        data=json.dumps(data),
        returnFormat="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 1}
    record = _record(subjects["b"], "baseline", "demographics")
    assert record.data["age"] == 60
    assert record.data["symptoms"] == ["fatigue", "nausea"]
    assert record.data["initials"] == "XYZ"  # normal overwrite keeps what the row leaves blank or out
    assert record.status == 1 and record.version == 2
    assert AuditEvent.objects.filter(action="record.update", reason="REDCap API import").exists()


@pytest.mark.redcap("record", "import")
def test_it_imports_csv_with_new_repeat_instances_and_day_month_dates(
    client, redcap_tokens, records, subjects
):
    data = (
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,visit_date,lesions_complete\n"
        "A-0001,week_8_arm_1,lesions,new,30/05/2025,0\n"
    )
    response = post(
        client,
        redcap_tokens["coordinator_a"],
        content="record",
        action="import",
        format="csv",
        data=data,
        dateFormat="DMY",
        returnContent="ids",
        returnFormat="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == ["A-0001"]
    assert _record(subjects["a"], "week_8", "lesions", 3).data["visit_date"] == "2025-05-30"


@pytest.mark.redcap("record", "import")
def test_overwrite_behaviour_erases_blank_values(client, redcap_tokens, records, subjects):
    data = [{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "weight": ""}]
    post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="import",
        format="json",
        data=json.dumps(data),
        overwriteBehavior="overwrite",
        returnFormat="json",
    )
    assert "weight" not in _record(subjects["a"], "baseline", "demographics").data


@pytest.mark.redcap("record", "import")
def test_it_writes_nothing_when_any_row_is_invalid(client, redcap_tokens, records, subjects):
    data = [
        {"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "61"},
        {"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "500"},
    ]
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="import",
        format="json",
        data=json.dumps(data),
        returnFormat="json",
    )
    assert response.status_code == 400
    assert "age" in response.json()["error"] and "B-0001" in response.json()["error"]
    assert _record(subjects["a"], "baseline", "demographics").data["age"] == 54


@pytest.mark.redcap("record", "import")
def test_it_refuses_import_at_another_site_and_for_read_only_roles(client, redcap_tokens, records):
    data = json.dumps([{"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "61"}])
    other_site = post(
        client,
        redcap_tokens["coordinator_a"],
        content="record",
        action="import",
        format="json",
        data=data,
        returnFormat="json",
    )
    assert other_site.status_code == 400 and "B-0001" in other_site.json()["error"]
    for persona in ("statistician", "monitor", "pi"):
        response = post(
            client,
            redcap_tokens[persona],
            content="record",
            action="import",
            format="json",
            data=data,
            returnFormat="json",
        )
        assert response.status_code == 403, persona


@pytest.mark.redcap("record", "import")
def test_it_refuses_unknown_fields_and_records_that_are_not_enrolled(client, redcap_tokens, records):
    unknown_field = json.dumps(
        [{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "shoe_size": "9"}]
    )
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="import",
        format="json",
        data=unknown_field,
        returnFormat="json",
    )
    assert "shoe_size" in response.json()["error"]
    unknown_record = json.dumps([{"record_id": "Z-9999", "redcap_event_name": "baseline_arm_1", "age": "9"}])
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="import",
        format="json",
        data=unknown_record,
        returnFormat="json",
    )
    assert "enrol" in response.json()["error"]


@pytest.mark.redcap("record", "export")
@pytest.mark.redcap("record", "import")
def test_a_round_trip_of_the_export_changes_nothing(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    exported = post(client, token, content="record", format="json").content.decode()
    before = AuditEvent.objects.count()
    response = post(
        client, token, content="record", action="import", format="json", data=exported, returnFormat="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 3}
    assert AuditEvent.objects.count() == before


@pytest.mark.redcap("record", "delete", differs="deletes form records; the subject's enrolment stays")
def test_it_deletes_records_through_an_audited_service(client, redcap_tokens, records, subjects):
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="delete",
        returnFormat="json",
        **{"records[0]": "B-0001"},
    )
    assert response.status_code == 200, response.content
    assert response.json() == 1
    assert not FormRecord.objects.filter(subject=subjects["b"]).exists()
    event = AuditEvent.objects.filter(action="record.delete").get()
    assert event.before["data"]["initials"] == "XYZ"


@pytest.mark.redcap("record", "delete")
def test_it_deletes_one_instance_of_a_repeating_instrument(client, redcap_tokens, records, subjects):
    post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="delete",
        returnFormat="json",
        records="A-0001",
        instrument="lesions",
        event="week_8_arm_1",
        repeat_instance="2",
    )
    assert list(
        FormRecord.objects.filter(subject=subjects["a"], event__name="week_8").values_list(
            "instance", flat=True
        )
    ) == [1]


@pytest.mark.redcap("record", "delete")
def test_only_study_administrators_delete_and_unknown_records_are_named(client, redcap_tokens, records):
    for persona in ("data_manager", "coordinator_a", "statistician"):
        response = post(
            client,
            redcap_tokens[persona],
            content="record",
            action="delete",
            returnFormat="json",
            records="A-0001",
        )
        assert response.status_code == 403, persona
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        action="delete",
        returnFormat="json",
        records="A-0001,NOPE",
    )
    assert response.status_code == 400 and "NOPE" in response.json()["error"]
    assert FormRecord.objects.filter(subject__subject_id="A-0001").exists()


def _import_csv(client, token, text):
    return post(
        client, token, content="record", action="import", format="csv", data=text, returnFormat="json"
    )


@pytest.mark.redcap("record", "import")
def test_checkbox_columns_that_change_nothing_leave_the_record_as_it_was(
    client, redcap_tokens, records, subjects
):
    # The same marks as stored (pain and nausea) are no change: no new version, no audit event.
    before = _record(subjects["a"], "baseline", "demographics")
    text = (
        "record_id,redcap_event_name,symptoms___pain,symptoms___nausea,symptoms___fatigue\n"
        "A-0001,baseline_arm_1,1,1,0\n"
    )
    response = _import_csv(client, redcap_tokens["admin"], text)
    assert response.status_code == 200, response.content
    record = _record(subjects["a"], "baseline", "demographics")
    assert sorted(before.data["symptoms"]) == ["nausea", "pain"]
    assert record.data == before.data
    assert record.version == before.version == 1


@pytest.mark.redcap("record", "import")
def test_checkbox_marks_other_than_1_and_0_are_read_column_by_column(
    client, redcap_tokens, records, subjects
):
    # "checked"/"Unchecked" and a padded " 0" are REDCap marks too: the same outcome as 1 and 0.
    text = (
        "record_id,redcap_event_name,symptoms___pain,symptoms___nausea,symptoms___fatigue\n"
        'A-0001,baseline_arm_1," 0",Unchecked,checked\n'
    )
    response = _import_csv(client, redcap_tokens["admin"], text)
    assert response.status_code == 200, response.content
    record = _record(subjects["a"], "baseline", "demographics")
    assert record.data["symptoms"] == ["fatigue"]
    assert record.version == 2


@pytest.mark.redcap("record", "import")
def test_checkbox_ones_and_zeros_add_and_remove_codes_sorted(client, redcap_tokens, records, subjects):
    text = (
        "record_id,redcap_event_name,symptoms___pain,symptoms___nausea,symptoms___fatigue\n"
        "A-0001,baseline_arm_1,0,1,1\n"
    )
    response = _import_csv(client, redcap_tokens["admin"], text)
    assert response.status_code == 200, response.content
    assert _record(subjects["a"], "baseline", "demographics").data["symptoms"] == ["fatigue", "nausea"]
