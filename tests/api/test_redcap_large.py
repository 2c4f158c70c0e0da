"""The REDCap endpoint at scale: exports stream in batches with the very bytes of a whole answer;
imports parse their body and JSON without a copy per row, read and write in chunks, merge the rows
of one record, and stay all or nothing (benchmarks/api_bench.py measures the same at full size)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.http import QueryDict

from capture.api.redcap import records as redcap_records
from capture.api.redcap import render
from capture.api.redcap import views as redcap_views
from capture.audit.models import AuditEvent
from capture.records.models import FormRecord

URL = "/redcap/api/"


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.redcap("record", "export")
@pytest.mark.parametrize("fmt", ["json", "csv", "xml"])
@pytest.mark.parametrize("record_type", ["flat", "eav"])
def test_a_streamed_export_has_the_bytes_of_a_whole_one(
    client, redcap_tokens, records, monkeypatch, fmt, record_type
):
    token = redcap_tokens["statistician"]  # de-identified: the shifted dates go through the stream too
    params = {"content": "record", "format": fmt, "type": record_type, "rawOrLabelHeaders": "label"}
    whole = post(client, token, **params)
    assert not whole.streaming, "a small export should go out whole, with its length"
    monkeypatch.setattr(render, "STREAM_BATCH", 1)
    monkeypatch.setattr(redcap_records, "SUBJECT_CHUNK", 1)
    streamed = post(client, token, **params)
    assert streamed.status_code == 200
    assert streamed.streaming, "more rows than STREAM_BATCH should stream"
    assert body(streamed) == body(whole)


@pytest.mark.redcap("record", "import")
def test_rows_of_one_record_merge_into_one_audited_write(client, redcap_tokens, records, subjects):
    rows = [
        {"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "61"},
        {"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "weight": "80.5"},
    ]
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        format="json",
        data=json.dumps(rows),
        returnFormat="json",
    )
    assert response.status_code == 200, response.content
    record = FormRecord.objects.get(subject=subjects["b"], event__name="baseline", form_name="demographics")
    assert (record.data["age"], record.data["weight"], record.version) == (61, 80.5, 2)
    update = AuditEvent.objects.get(action="record.update", object_id=str(record.pk))
    assert update.after == {"age": 61, "weight": 80.5}
    assert update.reason == "REDCap API import"


def test_a_bad_row_in_a_later_chunk_undoes_the_earlier_chunks(
    client, redcap_tokens, records, subjects, monkeypatch
):
    monkeypatch.setattr(redcap_records, "IMPORT_CHUNK", 1)
    before = AuditEvent.objects.count()
    rows = [
        {"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "61"},
        {"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "500"},
    ]
    response = post(
        client,
        redcap_tokens["admin"],
        content="record",
        format="json",
        data=json.dumps(rows),
        returnFormat="json",
    )
    assert response.status_code == 400
    assert '"B-0001","age","500"' in response.json()["error"]
    assert FormRecord.objects.get(subject=subjects["a"], form_name="demographics").data["age"] == 54
    assert AuditEvent.objects.count() == before


def test_a_locked_record_refuses_a_change_but_not_its_own_values(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    FormRecord.objects.filter(pk=records["a_demo"].pk).update(locked=True)
    exported = body(post(client, token, content="record", format="json")).decode()
    before = AuditEvent.objects.count()
    same = post(client, token, content="record", format="json", data=exported, returnFormat="json")
    assert same.status_code == 200, same.content
    assert AuditEvent.objects.count() == before
    change = json.dumps([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "61"}])
    refused = post(client, token, content="record", format="json", data=change, returnFormat="json")
    assert refused.status_code == 400
    assert "locked" in refused.json()["error"] and "A-0001" in refused.json()["error"]
    assert FormRecord.objects.get(pk=records["a_demo"].pk).data["age"] == 54


@pytest.mark.parametrize("block", [1 << 20, 3, 4])
def test_the_endpoint_parses_a_form_body_as_django_does(monkeypatch, block):
    monkeypatch.setattr(redcap_views, "_UNQUOTE_BLOCK", block)  # escapes cut at block edges
    rows = [{"age": '6"1', "note": "é€ + & = %", "empty": ""}] * 20
    bodies = [
        b"a=1&b=x+y&c=%22%7B%7D&c=2&d&e=&=f&g=%E2%82%AC&h=%zz&&i=%E2%82",
        b"",
        b"x=%2",
        b"p=%2541&q=%25%32%32&r=100%25&s=%2a%2A",  # a literal "%" must not make a new escape
        b"records%5B0%5D=A-0001&records%5B1%5D=B-0001",
        urlencode({"token": "ABC", "data": json.dumps(rows)}).encode(),
    ]
    for raw in bodies:
        assert dict(redcap_views.form_fields(raw, "utf-8").lists()) == dict(QueryDict(raw).lists()), raw


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "empty"),
        ("nope", "not valid JSON"),
        ('[{"record_id": "A-0001"}', "expected ',' or ']'"),
        ('[{"record_id": "A-0001"}] []', "extra data"),
        ('["A-0001"]', "list of objects"),
    ],
)
def test_bad_json_data_is_named_and_nothing_is_written(client, redcap_tokens, records, data, message):
    before = AuditEvent.objects.count()
    response = post(
        client, redcap_tokens["admin"], content="record", format="json", data=data, returnFormat="json"
    )
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert AuditEvent.objects.count() == before
