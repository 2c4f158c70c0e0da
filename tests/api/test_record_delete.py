"""Deleting a record over REST and the REDCap API: the record service's one delete and its rules.

A signed record, or one with a query, is refused on both APIs, and nothing goes; an allowed
delete keeps the values and the reason in the audit trail."""

from __future__ import annotations

import pytest

from capture.audit.models import AuditEvent
from capture.records import services
from capture.records.models import FormRecord
from tests.conftest import PASSWORD

REST = "/api/v1/studies/trial/subjects/A-0001/records/baseline/demographics/1/"
REDCAP = "/redcap/api/"


def rest_delete(client, token, body):
    return client.delete(REST, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")


def redcap_delete(client, token):
    return client.post(
        REDCAP,
        {
            "token": token,
            "content": "record",
            "action": "delete",
            "returnFormat": "json",
            "records[0]": "A-0001",
            "instrument": "demographics",
        },
    )


def _sign(personas, record):
    services.sign_record(actor=personas["pi"], record=record, password=PASSWORD)


def _query(personas, record):
    services.open_query(actor=personas["monitor"], record=record, field="age", text="Is 54 right?")


def _kept(record):
    assert FormRecord.objects.filter(pk=record.pk).exists()
    assert not AuditEvent.objects.filter(action="record.delete").exists()


@pytest.mark.parametrize("protect", [_sign, _query], ids=["signed", "open query"])
def test_rest_delete_refuses_a_signed_or_queried_record(client, api_tokens, records, personas, protect):
    protect(personas, records["a_demo"])
    response = rest_delete(client, api_tokens["admin"], {"reason": "duplicate"})
    assert response.status_code == 400, response.content
    assert "signed" in response.json()["detail"] or "queries" in response.json()["detail"]
    _kept(records["a_demo"])


@pytest.mark.redcap("record", "delete", differs="a signed record or one with queries is refused")
@pytest.mark.parametrize("protect", [_sign, _query], ids=["signed", "open query"])
def test_redcap_delete_refuses_a_signed_or_queried_record(client, redcap_tokens, records, personas, protect):
    protect(personas, records["a_demo"])
    response = redcap_delete(client, redcap_tokens["admin"])
    assert response.status_code == 400, response.content
    assert "signed" in response.json()["error"] or "queries" in response.json()["error"]
    _kept(records["a_demo"])


def test_rest_delete_keeps_the_values_and_reason_in_the_audit(client, api_tokens, records, personas):
    record = records["a_demo"]
    response = rest_delete(client, api_tokens["admin"], {"reason": "entered for the wrong patient"})
    assert response.status_code == 204, response.content
    assert not FormRecord.objects.filter(pk=record.pk).exists()
    event = AuditEvent.objects.get(action="record.delete")
    assert event.object_id == str(record.pk) and event.actor == personas["admin"]
    assert event.reason == "entered for the wrong patient"
    assert event.before["data"]["initials"] == "ABC" and event.before["version"] == 1


def test_rest_delete_needs_a_reason_and_a_study_administrator(client, api_tokens, records):
    response = rest_delete(client, api_tokens["admin"], {})
    assert response.status_code == 400 and "reason" in response.json()["detail"]
    for persona in ("data_manager", "coordinator_a"):
        response = rest_delete(client, api_tokens[persona], {"reason": "duplicate"})
        assert response.status_code == 403, persona
    _kept(records["a_demo"])


@pytest.mark.redcap("record", "delete")
def test_redcap_delete_writes_its_reason_in_the_audit(client, redcap_tokens, records):
    response = redcap_delete(client, redcap_tokens["admin"])
    assert response.status_code == 200 and response.json() == 1
    assert not FormRecord.objects.filter(pk=records["a_demo"].pk).exists()
    event = AuditEvent.objects.get(action="record.delete")
    assert event.reason == "REDCap API delete" and event.before["data"]["initials"] == "ABC"


def test_rest_delete_of_a_locked_record_answers_423(client, api_tokens, records, personas):
    services.set_record_lock(
        actor=personas["data_manager"], record=records["a_demo"], locked=True, reason="source verified"
    )
    response = rest_delete(client, api_tokens["admin"], {"reason": "duplicate"})
    assert response.status_code == 423 and "locked" in response.json()["detail"]
    _kept(records["a_demo"])
