"""Source data verification: a monitor marks a form (or one field) verified; a later change of a
verified value clears the mark and says why, on the entry page and the dashboard; the audit keeps
every mark and clearance."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.records import verification
from capture.records.bulk import RecordWrite, write_records
from capture.records.models import Status
from capture.records.services import save_record

VALUES = {"sex": "1", "age": 54, "weight": 70}


def save(personas, subject, values, *, version=None, status=Status.INCOMPLETE, reason=""):
    return save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=values,
        expected_version=version,
        status=status,
        reason=reason,
    )


def entry_url(subject) -> str:
    return reverse("records:entry", args=["trial", subject.subject_id, "baseline", "demographics", 1])


def test_it_marks_a_form_verified_and_a_later_change_clears_it_saying_why(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    mark = verification.verify(actor=personas["monitor"], record=record)
    assert mark.active and mark.record_version == 1
    record = save(personas, subjects["a"], {**VALUES, "weight": 72}, version=1)
    mark.refresh_from_db()
    assert not mark.active
    assert (
        mark.cleared_reason
        == "weight changed in version 2 by coordinator_a after it was verified (version 1)."
    )
    assert verification.active(record) == []


def test_a_field_mark_is_cleared_only_by_a_change_of_that_field(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    age = verification.verify(actor=personas["monitor"], record=record, field="age")
    record = save(personas, subjects["a"], {**VALUES, "weight": 72}, version=1)
    age.refresh_from_db()
    assert age.active
    save(personas, subjects["a"], {**VALUES, "weight": 72, "age": 55}, version=2)
    age.refresh_from_db()
    assert not age.active and age.cleared_reason.startswith("age changed in version 3")


def test_a_status_change_alone_keeps_the_form_verified(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    mark = verification.verify(actor=personas["monitor"], record=record)
    save(personas, subjects["a"], VALUES, version=1, status=Status.UNVERIFIED)
    mark.refresh_from_db()
    assert mark.active


def test_the_audit_keeps_every_mark_and_clearance(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    verification.verify(actor=personas["monitor"], record=record)
    save(personas, subjects["a"], {**VALUES, "weight": 72}, version=1)
    verification.verify(actor=personas["monitor"], record=record)
    actions = list(
        AuditEvent.objects.filter(object_type="record", object_id=str(record.pk))
        .order_by("seq")
        .values_list("action", "actor_label")
    )
    assert actions == [
        ("record.create", "coordinator_a"),
        ("record.verify", "monitor"),
        ("record.update", "coordinator_a"),
        ("record.verification_cleared", "coordinator_a"),
        ("record.verify", "monitor"),
    ]


def test_a_coordinator_may_not_verify(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    with pytest.raises(PermissionDenied):
        verification.verify(actor=personas["coordinator_a"], record=record)


def test_an_import_that_changes_a_verified_value_clears_the_mark(personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    mark = verification.verify(actor=personas["monitor"], record=record)
    write = RecordWrite(
        subject=subjects["a"],
        event=record.event,
        form=record.form,
        form_name="demographics",
        instance=1,
        data={**VALUES, "age": 60},
        status=Status.INCOMPLETE,
        existing_id=record.pk,
        existing_version=1,
    )
    with transaction.atomic():
        write_records(actor=personas["data_manager"], study=subjects["a"].study, writes=[write])
    mark.refresh_from_db()
    assert (
        mark.cleared_reason == "age changed in version 2 by data_manager after it was verified (version 1)."
    )


def test_the_entry_page_verifies_without_javascript_and_shows_why_a_mark_went(client, personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    client.force_login(personas["monitor"])
    url = reverse(
        "monitoring:verify", args=["trial", subjects["a"].subject_id, "baseline", "demographics", 1]
    )
    response = client.post(url, {})
    assert response.status_code == 302 and response.url == entry_url(subjects["a"]) + "#monitoring"
    assert 'id="form-verified"' in client.get(entry_url(subjects["a"])).content.decode()
    save(personas, subjects["a"], {**VALUES, "weight": 72}, version=record.version)
    page = client.get(entry_url(subjects["a"])).content.decode()
    assert 'id="form-verified"' not in page
    assert "Verification cleared" in page and "weight changed in version 2 by coordinator_a" in page


def test_the_dashboard_shows_verified_and_cleared_forms(client, personas, subjects):
    record = save(personas, subjects["a"], VALUES)
    verification.verify(actor=personas["monitor"], record=record)
    client.force_login(personas["data_manager"])
    page = client.get(reverse("web:dashboard", args=["trial"])).content.decode()
    assert 'aria-label="Demographics: Incomplete · verified"' in page
    save(personas, subjects["a"], {**VALUES, "weight": 72}, version=1)
    page = client.get(reverse("web:dashboard", args=["trial"])).content.decode()
    assert 'aria-label="Demographics: Incomplete · verification cleared: a verified value changed"' in page
