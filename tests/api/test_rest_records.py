"""Reading and writing form records over REST: the record service, versions, de-identification."""

from __future__ import annotations

import datetime as dt

from capture.audit.models import AuditEvent
from capture.records.models import FormRecord

URL = "/api/v1/studies/trial/subjects/A-0001/records/baseline/demographics/1/"


def call(client, token, method, url=URL, body=None):
    return getattr(client, method)(
        url, body or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )


def test_it_reads_a_record_with_its_version(client, api_tokens, records):
    body = call(client, api_tokens["coordinator_a"], "get").json()
    assert body["data"]["initials"] == "ABC"
    assert body["version"] == 1 and body["status"] == 2 and body["form"] == "demographics@1.0"


def test_it_writes_through_the_record_service_and_bumps_the_version(client, api_tokens, records):
    response = call(
        client,
        api_tokens["coordinator_a"],
        "put",
        body={"values": {"sex": "1", "age": 56}, "status": 0, "version": 1, "reason": "typo"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2 and response.json()["data"] == {"sex": "1", "age": 56}
    assert AuditEvent.objects.filter(action="record.update", reason="typo").exists()


def _unchanged(record):
    """The record as the fixture stored it: same data, status and version, and no event after its creation."""
    stored = FormRecord.objects.get(pk=record.pk)
    assert (stored.data, stored.status, stored.version) == (record.data, record.status, 1)
    events = AuditEvent.objects.filter(object_type="record", object_id=str(record.pk))
    assert list(events.values_list("action", flat=True)) == ["record.create"]


def test_it_creates_a_new_record_with_201(client, api_tokens, records, personas):
    url = "/api/v1/studies/trial/subjects/B-0001/records/baseline/lesions/1/"
    response = call(client, api_tokens["coordinator_b"], "put", url, {"values": {"visit_date": "2025-03-03"}})
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1 and response.json()["data"] == {"visit_date": "2025-03-03"}
    stored = FormRecord.objects.get(
        subject__subject_id="B-0001", event__name="baseline", form_name="lesions", instance=1
    )
    assert stored.data == {"visit_date": "2025-03-03"} and stored.version == 1 and stored.status == 0
    assert stored.updated_by == personas["coordinator_b"]
    event = AuditEvent.objects.get(action="record.create", object_id=str(stored.pk))
    assert event.actor == personas["coordinator_b"] and event.study.slug == "trial"
    assert event.after == {"status": 0, "data": {"visit_date": "2025-03-03"}} and event.before is None


def test_a_stale_version_answers_409_with_both_values(client, api_tokens, records):
    call(
        client,
        api_tokens["data_manager"],
        "put",
        body={"values": {"sex": "2", "age": 50}, "version": 1, "reason": "source check"},
    )
    response = call(
        client,
        api_tokens["coordinator_a"],
        "put",
        body={"values": {"sex": "1", "age": 60}, "version": 1, "reason": "typo"},
    )
    assert response.status_code == 409
    body = response.json()
    assert body["current"]["data"]["age"] == 50 and body["current"]["version"] == 2
    assert body["submitted"]["values"]["age"] == 60
    stored = FormRecord.objects.get(pk=records["a_demo"].pk)
    assert stored.version == 2 and stored.data["age"] == 50 and stored.data["sex"] == "2"
    updates = AuditEvent.objects.filter(action="record.update", object_id=str(stored.pk))
    assert [e.reason for e in updates] == ["source check"]


def test_invalid_values_answer_400_naming_the_item(client, api_tokens, records):
    response = call(client, api_tokens["coordinator_a"], "put", body={"values": {"age": 500}, "version": 1})
    assert response.status_code == 400
    assert "age" in response.json()["errors"]
    _unchanged(records["a_demo"])


def test_a_locked_record_answers_423(client, api_tokens, records):
    FormRecord.objects.filter(pk=records["a_demo"].pk).update(locked=True)
    response = call(client, api_tokens["coordinator_a"], "put", body={"values": {"age": 5}, "version": 1})
    assert response.status_code == 423
    _unchanged(records["a_demo"])
    assert FormRecord.objects.get(pk=records["a_demo"].pk).data["age"] == 54


def test_a_statistician_reads_de_identified_records(client, api_tokens, records, subjects):
    body = call(client, api_tokens["statistician"], "get").json()
    assert "initials" not in body["data"] and body["data"]["age"] == 54
    lesions = call(
        client,
        api_tokens["statistician"],
        "get",
        "/api/v1/studies/trial/subjects/A-0001/records/baseline/lesions/1/",
    ).json()
    shift = subjects["a"].date_shift_days
    assert lesions["data"]["visit_date"] == (dt.date(2025, 3, 2) + dt.timedelta(days=shift)).isoformat()
    subject = call(client, api_tokens["statistician"], "get", "/api/v1/studies/trial/subjects/A-0001/").json()
    assert subject["enrollment_date"] == (dt.date(2025, 3, 1) + dt.timedelta(days=shift)).isoformat()
    listing = call(
        client, api_tokens["statistician"], "get", "/api/v1/studies/trial/records/?form=demographics"
    )
    assert "ABC" not in listing.content.decode() and "XYZ" not in listing.content.decode()


def test_a_monitor_reads_audit_without_identifier_values(client, api_tokens, records):
    body = call(
        client, api_tokens["monitor"], "get", "/api/v1/studies/trial/audit/?action=record.create"
    ).json()
    assert body["count"] == 6
    assert "ABC" not in str(body["results"])
    full = call(
        client, api_tokens["data_manager"], "get", "/api/v1/studies/trial/audit/?action=record.create"
    ).json()
    assert "ABC" in str(full["results"])


def test_session_auth_works_for_a_logged_in_user(client, personas, records):
    client.force_login(personas["pi"])
    assert client.get("/api/v1/studies/trial/subjects/").json()["count"] == 3


def test_it_enrols_a_subject_at_a_site_the_coordinator_works_at(client, api_tokens, study):
    ok = call(
        client,
        api_tokens["coordinator_a"],
        "post",
        "/api/v1/studies/trial/subjects/",
        {"site": "A", "enrollment_date": "2025-03-05"},
    )
    assert ok.status_code == 201 and ok.json()["subject_id"] == "A-0001"
    other = call(
        client,
        api_tokens["coordinator_a"],
        "post",
        "/api/v1/studies/trial/subjects/",
        {"site": "B", "enrollment_date": "2025-03-05"},
    )
    assert other.status_code == 400 and "sites/" in other.json()["detail"]
    future = call(
        client,
        api_tokens["coordinator_a"],
        "post",
        "/api/v1/studies/trial/subjects/",
        {"site": "A", "enrollment_date": "2999-01-01"},
    )
    assert future.status_code == 400 and "future" in future.json()["detail"]


def test_job_status_is_visible_to_its_owner_only(client, api_tokens, personas, study):
    from capture.jobs.models import Job

    job = Job.objects.create(
        study=study, created_by=personas["coordinator_a"], kind="import", title="t", handler="capture.x"
    )
    assert (
        call(client, api_tokens["coordinator_a"], "get", f"/api/v1/jobs/{job.pk}/").json()["status"]
        == "queued"
    )
    assert call(client, api_tokens["coordinator_b"], "get", f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert call(client, api_tokens["outsider"], "get", f"/api/v1/jobs/{job.pk}/").status_code == 404
