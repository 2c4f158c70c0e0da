"""The APIs show a de-identified reader (monitor, statistician) one shifted world: the REST audit
feed, record timestamps, the REDCap log, `dateRangeBegin`/`dateRangeEnd` and project info follow the
disclosure policy. Every expectation is the real value moved by a shift the test sets by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from capture.audit.models import AuditEvent
from capture.records.services import open_query, save_record
from capture.studies.disclosure import MASK
from capture.studies.models import Subject

SHIFT_A, SHIFT_B, SHIFT_MODEL = -40, -100, -200
URL = "/redcap/api/"


@pytest.fixture
def shifted(subjects, records, personas):
    """Known shifts for A-0001 and B-0001; a date changed and a query raised on an identifier."""
    Subject.objects.filter(pk=subjects["a"].pk).update(date_shift_days=SHIFT_A)
    Subject.objects.filter(pk=subjects["b"].pk).update(date_shift_days=SHIFT_B)
    Subject.objects.filter(pk=subjects["model"].pk).update(date_shift_days=SHIFT_MODEL)
    admin = personas["admin"]
    a = Subject.objects.get(pk=subjects["a"].pk)
    save_record(
        actor=admin,
        subject=a,
        event_name="baseline",
        form_name="lesions",
        values={
            "visit_date": "2025-03-04",
            "target_lesions": [{"lesion_site": "liver", "lesion_diameter": 12.5}],
        },
        instance=1,
        expected_version=1,
        reason="date corrected",
    )
    open_query(actor=personas["monitor"], record=records["a_demo"], field="initials", text="Initials ABC?")
    return a


def rest(client, token, url):
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content
    return response.json()


def moved(when: dt.datetime, days: int) -> dt.datetime:
    return when + dt.timedelta(days=days)


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_rest_audit_feed_shows_a_monitor_shifted_enrolment_dates_and_timestamps(
    client, api_tokens, shifted
):
    feed = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?action=subject.enroll&limit=50")
    rows = {r["object_label"]: r for r in feed["results"]}
    real = AuditEvent.objects.get(action="subject.enroll", object_label="A-0001")
    assert rows["A-0001"]["after"]["enrollment_date"] == "2025-01-20"  # 2025-03-01 - 40 days
    assert rows["B-0001"]["after"]["enrollment_date"] == "2024-11-21"  # 2025-03-01 - 100 days
    assert parse(rows["A-0001"]["timestamp"]) == moved(real.timestamp, SHIFT_A)
    assert rows["A-0001"]["hash"] is None, (
        "the hash covers the real timestamp: it would confirm a guessed shift"
    )
    manager = rest(client, api_tokens["data_manager"], "/api/v1/studies/trial/audit/?action=subject.enroll")
    mine = {r["object_label"]: r for r in manager["results"]}
    assert mine["A-0001"]["after"]["enrollment_date"] == "2025-03-01"
    assert parse(mine["A-0001"]["timestamp"]) == real.timestamp and mine["A-0001"]["hash"] == real.hash


def test_the_rest_audit_feed_withholds_timestamps_of_events_about_no_subject(client, api_tokens, shifted):
    feed = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?object_type=site")
    assert feed["count"] == 2
    assert [r["timestamp"] for r in feed["results"]] == [None, None]
    manager = rest(client, api_tokens["data_manager"], "/api/v1/studies/trial/audit/?object_type=site")
    assert all(r["timestamp"] for r in manager["results"])


def test_the_rest_audit_feed_shifts_record_values_and_leaves_out_identifiers(client, api_tokens, shifted):
    feed = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?object_type=record&limit=50")
    by_action = {}
    for row in feed["results"]:
        by_action.setdefault((row["action"], row["object_label"]), row)
    created = by_action[("record.create", "A-0001 / baseline / lesions #1")]
    assert created["after"]["data"]["visit_date"] == "2025-01-21"  # 2025-03-02 - 40 days
    updated = by_action[("record.update", "A-0001 / baseline / lesions #1")]
    assert updated["before"] == {"visit_date": "2025-01-21"} and updated["after"] == {
        "visit_date": "2025-01-23"
    }
    demo = by_action[("record.create", "A-0001 / baseline / demographics #1")]
    assert "initials" not in demo["after"]["data"] and demo["after"]["data"]["age"] == 54
    assert demo["after"]["status"] == 2
    queries = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?object_type=query")["results"]
    assert queries[0]["after"]["text"] == MASK and "ABC" not in str(queries)


def test_rest_records_show_a_statistician_shifted_created_and_updated_times(client, api_tokens, shifted):
    from capture.records.models import FormRecord

    record = FormRecord.objects.get(subject=shifted, event__name="baseline", form_name="lesions", instance=1)
    url = "/api/v1/studies/trial/subjects/A-0001/records/baseline/lesions/1/"
    body = rest(client, api_tokens["statistician"], url)
    assert parse(body["created_at"]) == moved(record.created_at, SHIFT_A)
    assert parse(body["updated_at"]) == moved(record.updated_at, SHIFT_A)
    assert body["data"]["visit_date"] == "2025-01-23"  # 2025-03-04 - 40 days
    listed = rest(
        client, api_tokens["statistician"], "/api/v1/studies/trial/records/?subject=A-0001&form=lesions"
    )
    assert parse(listed["results"][0]["updated_at"]) == moved(record.updated_at, SHIFT_A)
    real = rest(client, api_tokens["pi"], url)
    assert parse(real["updated_at"]) == record.updated_at


def test_rest_subjects_show_a_monitor_the_shifted_enrolment_date(client, api_tokens, shifted):
    subjects = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/subjects/")["results"]
    dates = {s["subject_id"]: s["enrollment_date"] for s in subjects}
    assert dates["A-0001"] == "2025-01-20" and dates["B-0001"] == "2024-11-21"


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


def local(moment: dt.datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return timezone.localtime(moment).strftime(fmt)


def test_redcap_date_range_is_read_in_the_shifted_world_of_a_statistician(client, redcap_tokens, shifted):
    from capture.records.models import FormRecord

    last = FormRecord.objects.filter(subject=shifted).order_by("-updated_at").first().updated_at
    first = FormRecord.objects.filter(subject=shifted).order_by("updated_at").first().updated_at
    window = {
        "dateRangeBegin": local(moved(first, SHIFT_A) - dt.timedelta(minutes=1)),
        "dateRangeEnd": local(moved(last, SHIFT_A) + dt.timedelta(minutes=1)),
    }
    rows = post(client, redcap_tokens["statistician"], content="record", format="json", **window).json()
    assert {r["record_id"] for r in rows} == {"A-0001"}
    real_window = {
        "dateRangeBegin": local(first - dt.timedelta(minutes=1)),
        "dateRangeEnd": local(last + dt.timedelta(minutes=1)),
    }
    nothing = post(client, redcap_tokens["statistician"], content="record", format="json", **real_window)
    assert nothing.json() == [], "a window of real times must not find records the user sees 40 days earlier"
    admin = post(client, redcap_tokens["admin"], content="record", format="json", **real_window).json()
    assert "A-0001" in {r["record_id"] for r in admin}


def test_the_redcap_log_shows_a_monitor_shifted_times_and_filters_on_them(client, redcap_tokens, shifted):
    enrolled = AuditEvent.objects.get(action="subject.enroll", object_label="B-0001")
    rows = post(client, redcap_tokens["monitor"], content="log", format="json", record="B-0001").json()
    enrol = next(
        r for r in rows if r["action"] == "Created Record B-0001" and "enrollment_date" in r["details"]
    )
    assert enrol["timestamp"] == local(moved(enrolled.timestamp, SHIFT_B), "%Y-%m-%d %H:%M")
    everything = post(client, redcap_tokens["monitor"], content="log", format="json").json()
    sites = [r for r in everything if r["action"] == "site.create"]
    assert len(sites) == 2 and {r["timestamp"] for r in sites} == {""}
    around = {
        "beginTime": local(moved(enrolled.timestamp, SHIFT_B) - dt.timedelta(minutes=1), "%Y-%m-%d %H:%M"),
        "endTime": local(moved(enrolled.timestamp, SHIFT_B) + dt.timedelta(minutes=1), "%Y-%m-%d %H:%M"),
    }
    found = post(client, redcap_tokens["monitor"], content="log", format="json", **around).json()
    assert found and {r["record"] for r in found} == {"B-0001"}
    real_around = {
        "beginTime": local(enrolled.timestamp - dt.timedelta(minutes=1), "%Y-%m-%d %H:%M"),
        "endTime": local(enrolled.timestamp + dt.timedelta(minutes=1), "%Y-%m-%d %H:%M"),
    }
    assert post(client, redcap_tokens["monitor"], content="log", format="json", **real_around).json() == []


def test_redcap_project_info_withholds_the_creation_time_from_de_identified_readers(
    client, redcap_tokens, study, shifted
):
    info = post(client, redcap_tokens["statistician"], content="project", format="json").json()
    assert info["creation_time"] == ""
    admin = post(client, redcap_tokens["admin"], content="project", format="json").json()
    assert admin["creation_time"] == local(study.created_at)


def test_the_rest_audit_feed_withholds_the_folder_an_imaging_ingest_read(client, api_tokens, study, personas):
    from django.db import transaction

    from capture.audit.services import record_event

    with transaction.atomic():
        record_event(
            actor=personas["admin"],
            study=study,
            action="imaging.ingest",
            object_type="imaging",
            object_id="folder",
            object_label="/incoming/DOE_JANE_MRN4471",
            after={"files": 3},
        )
    feed = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?object_type=imaging")
    assert "DOE_JANE" not in str(feed) and feed["results"][0]["after"] == {"files": 3}
    manager = rest(client, api_tokens["data_manager"], "/api/v1/studies/trial/audit/?object_type=imaging")
    assert manager["results"][0]["object_label"] == "/incoming/DOE_JANE_MRN4471"


def test_job_times_are_withheld_from_a_de_identified_owner(client, api_tokens, personas, study):
    from capture.jobs.models import Job

    for owner in ("statistician", "data_manager"):
        job = Job.objects.create(
            study=study, created_by=personas[owner], kind="export", title="t", handler="capture.x"
        )
        body = rest(client, api_tokens[owner], f"/api/v1/jobs/{job.pk}/")
        if owner == "statistician":
            assert body["created_at"] is None and body["status"] == "queued"
        else:
            assert parse(body["created_at"]) == job.created_at


def test_the_rest_audit_feed_withholds_an_identified_exports_cohort(client, api_tokens, study, personas):
    from django.db import transaction

    from capture.audit.services import record_event

    spec = {"identified": True, "cohort": "[date_of_birth] = '1965-07-03'", "formats": ["csv"]}
    with transaction.atomic():
        record_event(
            actor=personas["admin"],
            study=study,
            action="export.request",
            object_type="job",
            object_id="1",
            object_label="Export",
            after={"spec": spec, "subjects": 1},
        )
    feed = rest(client, api_tokens["monitor"], "/api/v1/studies/trial/audit/?action=export.request")
    assert "1965-07-03" not in str(feed)
    assert feed["results"][0]["after"]["spec"]["formats"] == ["csv"]
    manager = rest(client, api_tokens["data_manager"], "/api/v1/studies/trial/audit/?action=export.request")
    assert manager["results"][0]["after"]["spec"]["cohort"] == spec["cohort"]
