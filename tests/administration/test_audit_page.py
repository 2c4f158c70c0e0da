"""The audit log page: keyset pages, filters, site limits, de-identified values, CSV, verification."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditChain, AuditEvent
from capture.audit.services import chain_key, record_event
from capture.jobs.models import Job
from capture.records.services import save_record
from capture.studies import services
from capture.studies.models import Membership


def _page(client, study, **params):
    response = client.get(reverse("administration:audit", args=[study.slug]), params)
    assert response.status_code == 200
    return response


def _seqs(response):
    return [r["seq"] for r in response.context["rows"]]


def _csv(client, study, **params):
    response = client.get(reverse("administration:audit_csv", args=[study.slug]), params)
    assert response.status_code == 200 and response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _tick(study, n):
    with transaction.atomic():
        for i in range(n):
            record_event(actor=SYSTEM, study=study, action="test.tick", object_type="test", object_id=i)


@pytest.fixture
def entered(personas, subjects):
    """Demographics at both sites: the admin at A (with initials, an identifier), coordinator B at B."""
    save_record(
        actor=personas["admin"],
        subject=subjects["a"],
        event_name="baseline",
        form_name="demographics",
        values={"initials": "JQD", "age": "50"},
    )
    save_record(
        actor=personas["coordinator_b"],
        subject=subjects["b"],
        event_name="baseline",
        form_name="demographics",
        values={"age": "61"},
    )
    return subjects


def test_pages_walk_every_event_newest_first_without_overlap(client, personas, study):
    _tick(study, 120)
    last = AuditChain.objects.get(key=chain_key(study)).last_seq
    client.force_login(personas["admin"])
    seen, before, sizes = [], None, []
    while True:
        response = _page(client, study, **({"before": before} if before else {}))
        seen += _seqs(response)
        sizes.append(len(_seqs(response)))
        before = response.context["next_before"]
        if before is None:
            break
    assert seen == list(range(last, 0, -1))
    assert sizes[:-1] == [50] * (len(sizes) - 1)


def test_an_event_written_between_pages_does_not_shift_the_next_page(client, personas, study):
    _tick(study, 60)
    client.force_login(personas["admin"])
    first = _page(client, study)
    cursor = first.context["next_before"]
    _tick(study, 5)
    second = _page(client, study, before=cursor)
    assert _seqs(second)[0] == cursor - 1


def test_a_broken_page_link_is_not_found(client, personas, study):
    client.force_login(personas["admin"])
    assert client.get(reverse("administration:audit", args=[study.slug]), {"before": "x"}).status_code == 404


def test_filters_by_user_action_subject_form_field_and_site(client, personas, study, entered):
    client.force_login(personas["admin"])
    by_b = _page(client, study, user="coordinator_b")
    assert [r["action"] for r in by_b.context["rows"]] == ["record.create"]
    creates = _page(client, study, action="record.")
    assert {r["label"] for r in creates.context["rows"]} == {
        "A-0001 / baseline / demographics #1",
        "B-0001 / baseline / demographics #1",
    }
    about_a = _page(client, study, subject="A-0001")
    assert [(r["action"], r["label"]) for r in about_a.context["rows"]] == [
        ("record.create", "A-0001 / baseline / demographics #1"),
        ("subject.enroll", "A-0001"),
    ]
    assert len(_page(client, study, form="demographics").context["rows"]) == 2
    assert len(_page(client, study, form="lesions").context["rows"]) == 0
    with_initials = _page(client, study, field="initials")
    assert [r["label"] for r in with_initials.context["rows"]] == ["A-0001 / baseline / demographics #1"]
    at_b = _page(client, study, site="B")
    assert [(r["action"], r["label"]) for r in at_b.context["rows"]] == [
        ("record.create", "B-0001 / baseline / demographics #1"),
        ("subject.enroll", "B-0001"),
        ("site.create", "B — Site B"),
    ]


def test_filters_by_date_range(client, personas, study, entered):
    client.force_login(personas["admin"])
    today = timezone.localdate()
    everything = len(_page(client, study).context["rows"])
    assert (
        len(_page(client, study, date_from=today.isoformat(), date_to=today.isoformat()).context["rows"])
        == everything
    )
    assert (
        len(_page(client, study, date_from=(today + dt.timedelta(days=1)).isoformat()).context["rows"]) == 0
    )
    assert len(_page(client, study, date_to=(today - dt.timedelta(days=1)).isoformat()).context["rows"]) == 0
    bad = _page(client, study, date_from="01/03/2025")
    assert "YYYY-MM-DD" in bad.content.decode()


def test_a_site_limited_reader_sees_only_its_sites_events(client, personas, study, entered):
    # No code role is both site-limited and allowed the audit; a hand-edited membership is.
    membership = Membership.objects.get(user=personas["monitor"], study=study)
    Membership.objects.filter(pk=membership.pk).update(all_sites=False)
    membership.sites.set([study.sites.get(code="A")])
    client.force_login(personas["monitor"])
    rows = _page(client, study).context["rows"]
    labels = [r["label"] for r in rows]
    assert labels == ["A-0001 / baseline / demographics #1", "A-0002", "A-0001", "A — Site A"]
    assert len(_page(client, study, site="B").context["rows"]) == 0
    assert len(_csv(client, study)) == 1 + 4


def test_a_de_identified_reader_sees_shifted_dates_and_no_identifiers(client, personas, study, entered):
    subject = entered["a"]
    client.force_login(personas["admin"])
    assert "JQD" in _page(client, study).content.decode()
    client.force_login(personas["monitor"])
    page = _page(client, study, subject="A-0001")
    html = page.content.decode()
    assert "JQD" not in html
    enrol = next(r for r in page.context["rows"] if r["action"] == "subject.enroll")
    shifted = (dt.date(2025, 3, 1) + dt.timedelta(days=subject.date_shift_days)).isoformat()
    assert enrol["after"]["enrollment_date"] == shifted and shifted in html
    assert "2025-03-01" not in html
    rows = _csv(client, study)
    assert not any("JQD" in cell for row in rows for cell in row)
    refused = _page(client, study, field="initials", date_from="2025-01-01")
    text = refused.content.decode()
    assert "identifies a person" in text and "dates cannot be searched" in text


def test_the_csv_is_the_filtered_view_with_formula_cells_neutralised(client, personas, study, subjects):
    admin = personas["admin"]
    services.move_subject(
        actor=admin,
        study=study,
        subject=subjects["b"],
        site=study.sites.get(code="A"),
        reason="=HYPERLINK(1)",
    )
    client.force_login(admin)
    rows = _csv(client, study, action="subject.move")
    assert rows[0] == [
        "seq",
        "timestamp",
        "user",
        "action",
        "object_type",
        "object_id",
        "object",
        "before",
        "after",
        "reason",
    ]
    (row,) = rows[1:]
    assert row[2:] == [
        "admin",
        "subject.move",
        "subject",
        str(subjects["b"].pk),
        "B-0001",
        '{"site": "B"}',
        '{"site": "A"}',
        "'=HYPERLINK(1)",
    ]


def test_rows_link_to_their_record_and_show_before_and_after(client, personas, study, entered):
    save_record(
        actor=personas["admin"],
        subject=entered["a"],
        event_name="baseline",
        form_name="demographics",
        values={"initials": "JQD", "age": "51"},
        expected_version=1,
    )
    client.force_login(personas["admin"])
    html = _page(client, study, action="record.update").content.decode()
    assert reverse("web:record", args=[study.slug, "A-0001", "baseline", "demographics", 1]) in html
    assert "<b>age</b>: 50 → 51" in html


def test_verify_chain_runs_as_a_job_not_in_the_request(client, personas, study, entered):
    client.force_login(personas["monitor"])
    url = reverse("administration:audit_verify", args=[study.slug])
    response = client.post(f"{url}?action=record.")  # the job's worker has not run: nothing verified yet
    assert response.status_code == 302
    assert response["Location"] == reverse("administration:audit", args=[study.slug]) + "?action=record."
    job = Job.objects.get(study=study, kind="audit_verify")
    assert (job.status, job.created_by) == (Job.QUEUED, personas["monitor"])
    html = _page(client, study).content.decode()
    assert "Verification queued" in html and "The chain is intact" not in html


def test_verify_chain_says_intact_then_finds_an_edited_event(
    client, personas, study, entered, django_capture_on_commit_callbacks
):
    client.force_login(personas["monitor"])
    url = reverse("administration:audit_verify", args=[study.slug])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    n = AuditChain.objects.get(key=chain_key(study)).last_seq
    assert f"The chain is intact: {n} events checked" in _page(client, study).content.decode()
    event = AuditEvent.objects.filter(study=study).order_by("seq").first()
    with connection.cursor() as cursor:  # tampering, behind the ORM's back
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET reason = 'forged' WHERE id = %s", [event.pk])  # noqa: S608
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
    html = _page(client, study).content.decode()
    assert f"The chain is broken: 1 problem in {n} events" in html
    assert f"#{event.seq}" in html and "edited" in html
    # Another reader does not see the monitor's verification; a study administrator does.
    client.force_login(personas["pi"])
    assert "The chain is broken" not in _page(client, study).content.decode()
    client.force_login(personas["admin"])
    assert "The chain is broken" in _page(client, study).content.decode()


def test_a_coordinator_may_not_read_the_audit_log_or_its_csv(client, personas, study):
    client.force_login(personas["coordinator_a"])
    assert client.get(reverse("administration:audit", args=[study.slug])).status_code == 403
    assert client.get(reverse("administration:audit_csv", args=[study.slug])).status_code == 403
