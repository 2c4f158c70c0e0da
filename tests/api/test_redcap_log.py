"""`content=log` filters as REDCap's logging does: `logtype`, `dag`, and the times REDCapR sends
(`endTime=YYYY-MM-DD 24:00`, which REDCap reads as the end of that day)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.utils import timezone

URL = "/redcap/api/"


def log(client, token, **params):
    return client.post(URL, {"token": token, "content": "log", "format": "json", **params})


@pytest.mark.redcap("log", "export")
def test_logtype_keeps_only_that_kind_of_event(client, redcap_tokens, records):
    token = redcap_tokens["data_manager"]
    data = [{"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "61"}]
    imported = client.post(
        URL, {"token": token, "content": "record", "format": "json", "data": json.dumps(data)}
    )
    assert imported.status_code == 200, imported.content
    everything = log(client, token).json()
    added = log(client, token, logtype="record_add").json()
    edited = log(client, token, logtype="record_edit").json()
    users = log(client, token, logtype="user").json()
    assert added and {r["action"].split(" Record ")[0] for r in added} == {"Created"}
    assert [(r["action"], r["username"]) for r in edited] == [("Updated Record B-0001", "data_manager")]
    assert users and all(r["action"].startswith("membership.") for r in users)
    assert len(added) + len(edited) + len(users) < len(everything)
    assert log(client, token, logtype="page_view").json() == []  # Capture logs no page views
    wrong = log(client, token, logtype="surveys")
    assert wrong.status_code == 400 and "logtype" in wrong.json()["error"]


@pytest.mark.redcap("log", "export")
def test_the_dag_filter_keeps_the_events_of_that_groups_records(client, redcap_tokens, records):
    token = redcap_tokens["data_manager"]
    site_b = log(client, token, dag="b").json()
    assert site_b and {r["record"] for r in site_b} == {"B-0001"}
    site_a = log(client, token, dag="A").json()
    assert {r["record"] for r in site_a} == {"A-0001", "A-0002"}
    unknown = log(client, token, dag="nowhere")
    assert unknown.status_code == 400 and "dag" in unknown.json()["error"]


@pytest.mark.redcap("log", "export")
def test_redcapr_log_read_fields_with_24_00_read_to_the_end_of_the_day(client, redcap_tokens, records):
    today = timezone.localdate()
    yesterday = today - dt.timedelta(days=1)

    def redcapr(begin: dt.date, end: dt.date):
        # REDCapR's redcap_log_read: every field sent, blank when not asked for, CSV.
        body = {
            "token": redcap_tokens["admin"],
            "content": "log",
            "logtype": "",
            "user": "",
            "record": "",
            "dag": "",
            "beginTime": f"{begin:%Y-%m-%d} 00:00",
            "endTime": f"{end:%Y-%m-%d} 24:00",
            "format": "csv",
            "returnFormat": "csv",
        }
        response = client.post(URL, body)
        assert response.status_code == 200, response.content[:300]
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    rows = redcapr(today, today)
    assert any(r["action"] == "Created Record A-0001" for r in rows)
    assert redcapr(yesterday - dt.timedelta(days=7), yesterday) == []
    # The other spellings REDCap accepts: HH:MM, HH:MM:SS (PyCap), and blank.
    for end in (f"{today:%Y-%m-%d} 23:59", f"{today:%Y-%m-%d} 23:59:59", ""):
        assert len(log(client, redcap_tokens["admin"], endTime=end).json()) == len(rows), end
    bad = log(client, redcap_tokens["admin"], endTime="tomorrow")
    assert bad.status_code == 400 and "endTime" in bad.json()["error"]
