"""The record and audit services take an explicit actor: None is refused instead of skipping the
permission checks, and the system actor's audit events name the command that acted."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction

from capture.accounts.system import SYSTEM, SystemActor
from capture.audit.models import AuditEvent
from capture.audit.services import NewEvent, append_events, record_event
from capture.definitions.models import Event, EventForm
from capture.records.bulk import RecordWrite, write_records
from capture.records.models import FormRecord, Status
from capture.records.services import open_query, save_record, set_subject_lock

IMPORT_ODM = SystemActor(label="system: manage.py import_odm")


def _save(subject, actor, **kw):
    return save_record(
        actor=actor,
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values={"age": "54"},
        **kw,
    )


def _write(study, subject, actor):
    ef = EventForm.objects.get(event__arm=subject.arm, event__name="baseline", form__name="demographics")
    write = RecordWrite(
        subject=subject,
        event=Event.objects.get(pk=ef.event_id),
        form=ef.form,
        form_name="demographics",
        instance=1,
        data={"age": 54},
        status=Status.INCOMPLETE,
    )
    with transaction.atomic():
        return write_records(actor=actor, study=study, writes=[write])


def test_saving_a_record_without_an_actor_is_refused(subjects):
    with pytest.raises(TypeError, match="actor is required"):
        _save(subjects["a"], None)
    assert not FormRecord.objects.exists()


def test_an_import_without_an_actor_is_refused(study, subjects):
    with pytest.raises(TypeError, match="actor is required"):
        _write(study, subjects["a"], None)
    assert not FormRecord.objects.exists()


def test_an_audit_event_without_an_actor_is_refused(study):
    with transaction.atomic(), pytest.raises(TypeError, match="actor is required"):
        record_event(actor=None, study=study, action="x", object_type="x", object_id=1)
    with transaction.atomic(), pytest.raises(TypeError, match="actor is required"):
        append_events(actor=None, study=study, events=[NewEvent("x", "x", "1", "", None, None)])


def test_the_system_actor_saves_with_no_user_and_its_events_name_the_command(subjects):
    record = _save(subjects["a"], IMPORT_ODM)
    assert record.updated_by is None
    event = AuditEvent.objects.get(action="record.create")
    assert (event.actor_id, event.actor_label) == (None, "system: manage.py import_odm")


def test_the_system_actor_imports_and_its_events_name_the_command(study, subjects):
    result = _write(study, subjects["a"], IMPORT_ODM)
    assert (result.created, FormRecord.objects.get().updated_by) == (1, None)
    event = AuditEvent.objects.get(action="record.create")
    assert (event.actor_id, event.actor_label) == (None, "system: manage.py import_odm")


def test_a_person_is_still_checked_once_the_system_actor_exists(personas, subjects):
    # The monitor reads but does not enter data: the check runs for every actor that is a person.
    with pytest.raises(PermissionDenied):
        _save(subjects["a"], personas["monitor"])


def test_a_subject_lock_and_a_query_need_a_person(subjects, personas):
    record = _save(subjects["a"], SYSTEM)
    with pytest.raises(PermissionDenied, match="Only a person"):
        set_subject_lock(actor=SYSTEM, subject=subjects["a"], locked=True, reason="closing")
    with pytest.raises(PermissionDenied, match="Only a person"):
        open_query(actor=SYSTEM, record=record, field="age", text="Is 54 right?")
