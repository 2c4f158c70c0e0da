"""A member's API rights, set on the members page, limit what their tokens may do in the study."""

from __future__ import annotations

import datetime as dt
import json

from capture.studies import services
from capture.studies.models import Membership

REDCAP = "/redcap/api/"
RECORD = "/api/v1/studies/trial/subjects/A-0001/records/baseline/demographics/1/"


def _rights(personas, study, persona, **rights):
    membership = Membership.objects.get(user=personas[persona], study=study)
    services.set_api_rights(actor=personas["admin"], study=study, membership=membership, **rights)


def _redcap(client, token, **params):
    return client.post(REDCAP, {"token": token, "format": "json", **params})


def _rest(client, token, method, body=None):
    return getattr(client, method)(
        RECORD, body or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )


def test_without_export_rights_a_redcap_export_is_refused_and_an_import_is_not(
    client, personas, study, records, redcap_tokens
):
    token = redcap_tokens["coordinator_a"]
    assert _redcap(client, token, content="record").status_code == 200
    _rights(personas, study, "coordinator_a", export=False, import_=True, expires=None)
    refused = _redcap(client, token, content="record")
    assert refused.status_code == 403 and "do not include exporting" in refused.json()["error"]
    rows = json.dumps([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "57"}])
    assert _redcap(client, token, content="record", action="import", data=rows).status_code != 403


def test_without_import_rights_a_rest_write_is_refused_and_a_read_is_not(
    client, personas, study, records, api_tokens
):
    _rights(personas, study, "coordinator_a", export=True, import_=False, expires=None)
    token = api_tokens["coordinator_a"]
    assert _rest(client, token, "get").status_code == 200
    body = {"values": {"sex": "1", "age": 56}, "status": 0, "version": 1, "reason": "typo"}
    refused = _rest(client, token, "put", body)
    assert refused.status_code == 403 and "importing" in refused.content.decode()


def test_expired_api_rights_refuse_every_token_request_but_not_the_web_pages(
    client, personas, study, records, api_tokens, redcap_tokens
):
    _rights(personas, study, "coordinator_a", export=True, import_=True, expires=dt.date(2025, 1, 31))
    assert _rest(client, api_tokens["coordinator_a"], "get").status_code == 403
    answer = _redcap(client, redcap_tokens["coordinator_a"], content="record")
    assert answer.status_code == 403 and "ended on 2025-01-31" in answer.json()["error"]
    client.force_login(personas["coordinator_a"])
    assert client.get("/studies/trial/subjects/A-0001/").status_code == 200


def test_the_redcap_user_export_reports_the_api_rights(client, personas, study, redcap_tokens):
    _rights(personas, study, "coordinator_a", export=False, import_=False, expires=dt.date(2030, 6, 30))
    users = _redcap(client, redcap_tokens["admin"], content="user").json()
    row = next(u for u in users if u["username"] == "coordinator_a")
    assert (row["api_export"], row["api_import"], row["expiration"]) == (0, 0, "2030-06-30")
