"""What REDCap clients (PyCap, REDCapR) expect of the protocol: tokens, status codes, error shapes,
and the other `content=` exports (log, user, dag)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from capture.audit.models import AuditEvent
from capture.definitions.models import DataElement
from tests.api.test_redcap_metadata_import import METADATA_IMPORT

URL = "/redcap/api/"


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


@pytest.mark.redcap("project", "export")
def test_a_bad_or_missing_token_is_refused_with_403_in_the_asked_format(client, study):
    json_answer = post(client, "F" * 32, content="project", format="json")
    assert json_answer.status_code == 403 and "error" in json_answer.json()
    csv_answer = post(client, "not-hex", content="project", format="csv")
    assert csv_answer.status_code == 403 and csv_answer.content.decode().startswith("ERROR:")
    xml_answer = client.post(URL, {"content": "project"})
    assert xml_answer.status_code == 403 and "<error>" in xml_answer.content.decode()


def test_a_lower_case_token_is_refused_like_redcapr_would(client, redcap_tokens):
    response = post(client, redcap_tokens["admin"].lower(), content="project", format="json")
    assert response.status_code == 403


def test_get_is_not_the_api(client):
    assert client.get(URL).status_code == 405


def test_unknown_content_is_an_error(client, redcap_tokens):
    response = post(client, redcap_tokens["admin"], content="surveyLink", format="json")
    assert response.status_code == 400 and "content" in response.json()["error"]


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_definitions_of_a_study_not_made_from_a_dictionary_cannot_be_changed_through_it(
    client, redcap_tokens
):
    before = post(client, redcap_tokens["admin"], content="metadata", format="json").json()
    events = AuditEvent.objects.count()
    changed = [{**row, "field_label": "Changed through the API"} for row in before]
    changed.append({**before[-1], "field_name": "smuggled_in"})
    for data, refusal in (("[]", "has no fields"), (json.dumps(changed), "was not made from a REDCap data")):
        response = post(
            client, redcap_tokens["admin"], content="metadata", action="import", format="json", data=data
        )
        assert response.status_code == 400 and refusal in response.json()["error"]
    after = post(client, redcap_tokens["admin"], content="metadata", format="json").json()
    assert after == before and "smuggled_in" not in {r["field_name"] for r in after}
    assert not DataElement.objects.filter(name="smuggled_in").exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.redcap("metadata", "export")
def test_csv_exports_have_the_shape_redcapr_reads(client, redcap_tokens, records):
    text = post(client, redcap_tokens["admin"], content="metadata", format="csv").content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "field_name" and len(rows[0]) == 18 and all(len(r) == 18 for r in rows)
    assert rows[1][0] == "record_id"
    records_csv = post(client, redcap_tokens["admin"], content="record", format="csv", type="flat")
    assert records_csv.status_code == 200 and records_csv["Content-Type"].startswith("text/csv")


@pytest.mark.redcap("log", "export", differs="details of a de-identified reader name fields without values")
def test_the_log_needs_view_audit_and_hides_values_from_de_identified_readers(client, redcap_tokens, records):
    rows = post(client, redcap_tokens["data_manager"], content="log", format="json").json()
    assert any(r["record"] == "A-0001" and "initials = 'ABC'" in r["details"] for r in rows)
    monitor = post(client, redcap_tokens["monitor"], content="log", format="json", record="B-0001").json()
    assert monitor and {r["record"] for r in monitor} == {"B-0001"} and "XYZ" not in str(monitor)
    assert post(client, redcap_tokens["statistician"], content="log", format="json").status_code == 403


@pytest.mark.redcap(
    "user", "export", differs="a member who is not a study administrator sees only themselves"
)
def test_users_see_themselves_and_administrators_see_everyone(client, redcap_tokens, personas):
    mine = post(client, redcap_tokens["coordinator_a"], content="user", format="json").json()
    assert [u["username"] for u in mine] == ["coordinator_a"] and mine[0]["data_access_group"] == "a"
    everyone = post(client, redcap_tokens["admin"], content="user", format="json").json()
    assert "statistician" in {u["username"] for u in everyone}
    stats = next(u for u in everyone if u["username"] == "statistician")
    assert stats["data_export"] == 2 and stats["api_import"] == 0


@pytest.mark.redcap("record", "export")
def test_many_fields_fit_in_one_request(client, redcap_tokens, records):
    params = {f"fields[{i}]": "age" for i in range(1499)}
    params["fields[1499]"] = "sex"  # the last of 1,500 parameters still counts
    response = post(client, redcap_tokens["admin"], content="record", format="json", **params)
    assert response.status_code == 200
    base = {
        "redcap_event_name": "baseline_arm_1",
        "redcap_repeat_instrument": "",
        "redcap_repeat_instance": "",
    }
    assert response.json() == [
        {"record_id": "A-0001", **base, "sex": "1", "age": "54"},
        {"record_id": "B-0001", **base, "sex": "2", "age": "54"},
    ]
