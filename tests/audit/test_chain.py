"""The audit trail: every write leaves an event; any tampering is detected."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from capture.accounts.system import SYSTEM
from capture.audit.models import AppendOnlyError, AuditEvent
from capture.audit.services import record_event, verify_all
from capture.records.services import save_record


def _study_events(study):
    return list(AuditEvent.objects.filter(study=study).order_by("seq"))


def _raw(sql, params):
    # Tampering as an attacker with database access would: bypassing the ORM's guards.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# before / after are JSON columns: jsonb on PostgreSQL, text on SQLite.
_SET_JSON = {
    ("before", "postgresql"): 'UPDATE audit_auditevent SET "before" = CAST(%s AS jsonb) WHERE id = %s',
    ("after", "postgresql"): 'UPDATE audit_auditevent SET "after" = CAST(%s AS jsonb) WHERE id = %s',
    ("before", "sqlite"): 'UPDATE audit_auditevent SET "before" = %s WHERE id = %s',
    ("after", "sqlite"): 'UPDATE audit_auditevent SET "after" = %s WHERE id = %s',
}


def _set_json(column, value, pk):
    _raw(_SET_JSON[column, connection.vendor], [value, pk])


@pytest.fixture
def edited_record(subjects, personas):
    """A demographics record created (age 54) and then corrected to 56: a create and an update event."""
    admin, subject = personas["admin"], subjects["a"]
    values = {"initials": "ABC", "sex": "1", "age": 54}
    save_record(actor=admin, subject=subject, event_name="baseline", form_name="demographics", values=values)
    save_record(
        actor=admin,
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values={**values, "age": 56},
        expected_version=1,
        reason="source check",
    )
    create = AuditEvent.objects.get(action="record.create", object_label__contains=subject.subject_id)
    update = AuditEvent.objects.get(action="record.update", object_label__contains=subject.subject_id)
    assert update.before == {"age": 54} and update.after == {"age": 56}
    return create, update


def test_service_writes_leave_a_verifiable_chain(subjects, study):
    events = _study_events(study)
    actions = [e.action for e in events]
    assert actions[:3] == ["study.create", "site.create", "site.create"]
    assert actions.count("subject.enroll") == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert verify_all()[1] == []


def test_enrolment_event_names_actor_and_subject(subjects, study, personas):
    event = AuditEvent.objects.get(action="subject.enroll", object_label=subjects["b"].subject_id)
    assert event.actor == personas["admin"] and event.actor_label == "admin"
    assert event.after["site"] == "B" and event.before is None


def test_edited_event_is_detected(subjects, study):
    target = _study_events(study)[3]
    _raw("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["nothing to see", target.pk])
    problems = verify_all()[1]
    assert [(p.seq, p.kind) for p in problems] == [(target.seq, "edited")]


def test_edited_event_with_recomputed_hash_breaks_the_next_link(subjects, study):
    events = _study_events(study)
    target = events[3]
    target.reason = "forged"
    forged_hash = target.compute_hash()
    _raw(
        "UPDATE audit_auditevent SET reason = %s, hash = %s WHERE id = %s", ["forged", forged_hash, target.pk]
    )
    problems = verify_all()[1]
    assert (events[4].seq, "inserted-or-reordered") in [(p.seq, p.kind) for p in problems]


def test_deleted_event_is_detected(subjects, study):
    target = _study_events(study)[2]
    _raw("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
    kinds = {p.kind for p in verify_all()[1]}
    assert "missing" in kinds


def test_deleted_last_event_is_detected_by_the_chain_head(subjects, study):
    last = _study_events(study)[-1]
    _raw("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    assert [p.kind for p in verify_all()[1]] == ["tail-deleted"]


def test_reordered_events_are_detected(subjects, study):
    first, second = _study_events(study)[3:5]
    with transaction.atomic():
        _raw("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [999999, first.pk])
        _raw("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [first.seq, second.pk])
        _raw("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [second.seq, first.pk])
    kinds = [p.kind for p in verify_all()[1]]
    assert "edited" in kinds and "inserted-or-reordered" in kinds


def test_inserted_event_is_detected(subjects, study):
    events = _study_events(study)
    # Shift later events up by one and slip a forged event into the gap.
    for event in reversed(events[4:]):
        _raw("UPDATE audit_auditevent SET seq = seq + 1 WHERE id = %s", [event.pk])
    forged = AuditEvent(
        chain=events[0].chain,
        seq=events[4].seq,
        study=study,
        actor_label="mallory",
        timestamp=events[3].timestamp,
        action="subject.enroll",
        object_type="subject",
        object_id="999",
        prev_hash=events[3].hash,
    )
    forged.hash = forged.compute_hash()
    forged.save()
    problems = verify_all()[1]
    assert any(p.kind == "inserted-or-reordered" and p.seq == events[4].seq + 1 for p in problems), problems


def test_audit_events_cannot_be_changed_or_deleted_through_the_orm(subjects, study):
    event = _study_events(study)[0]
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_record_event_outside_a_transaction_is_refused(transactional_db):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_event(actor=SYSTEM, action="x", object_type="x", object_id=1)


def test_verify_audit_command_fails_on_tampering(subjects, study, capsys):
    call_command("verify_audit")
    assert "intact" in capsys.readouterr().out
    _raw(
        "UPDATE audit_auditevent SET action = %s WHERE id = %s",
        ["subject.delete", _study_events(study)[1].pk],
    )
    with pytest.raises(CommandError, match="damaged"):
        call_command("verify_audit")
    assert "edited" in capsys.readouterr().err


def test_a_large_float_in_an_event_still_verifies_after_the_database_round_trip(subjects, study):
    # PostgreSQL's jsonb gives 1e16 back as the integer 10000000000000000: the hash must match that.
    with transaction.atomic():
        record_event(
            actor=SYSTEM, study=study, action="test", object_type="x", object_id=1, after={"x": 1e16}
        )
    assert verify_all()[1] == []


def test_an_edited_before_value_is_detected(edited_record):
    _, update = edited_record
    # Rewrite history: the value the correction replaced was never 54.
    _set_json("before", json.dumps({"age": 60}), update.pk)
    assert AuditEvent.objects.get(pk=update.pk).before == {"age": 60}
    problems = verify_all()[1]
    assert [(p.seq, p.kind) for p in problems] == [(update.seq, "edited")]


def test_an_edited_after_value_is_detected(edited_record):
    create, _ = edited_record
    after = dict(create.after)
    after["data"] = {**after["data"], "initials": "XYZ"}
    _set_json("after", json.dumps(after), create.pk)
    problems = verify_all()[1]
    assert [(p.seq, p.kind) for p in problems] == [(create.seq, "edited")]


def test_an_erased_before_value_is_detected(edited_record):
    _, update = edited_record
    _raw('UPDATE audit_auditevent SET "before" = NULL WHERE id = %s', [update.pk])
    problems = verify_all()[1]
    assert [(p.seq, p.kind) for p in problems] == [(update.seq, "edited")]


def test_an_edited_after_value_with_recomputed_hash_breaks_the_next_link(edited_record, study):
    create, update = edited_record
    create.after = {**create.after, "data": {**create.after["data"], "age": 99}}
    forged_hash = create.compute_hash()
    _set_json("after", json.dumps(create.after), create.pk)
    _raw("UPDATE audit_auditevent SET hash = %s WHERE id = %s", [forged_hash, create.pk])
    problems = [(p.seq, p.kind) for p in verify_all()[1]]
    assert problems == [(update.seq, "inserted-or-reordered")]


def test_verify_audit_command_reports_an_edited_after_value(edited_record, capsys):
    _, update = edited_record
    _set_json("after", json.dumps({"age": 54}), update.pk)  # the correction now changes nothing
    with pytest.raises(CommandError, match="damaged"):
        call_command("verify_audit")
    err = capsys.readouterr().err
    assert f"#{update.seq}" in err and "edited" in err
