"""A page that read its record locked hands it to save_record, which reads it no more: the version,
record-lock and subject-lock rules hold on that read as on save_record's own."""

import pytest
from django.db import transaction

from capture.audit.services import verify_all
from capture.records.models import FormRecord, Status
from capture.records.services import (
    EditConflictError,
    RecordLockedError,
    lock_record,
    resolve_slot,
    save_record,
    set_subject_lock,
)


def _save(personas, subject, values, **kw):
    return save_record(
        actor=personas["admin"],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=values,
        **kw,
    )


def _locked(subject):
    return lock_record(subject, resolve_slot(subject, "baseline", "demographics"), "demographics", 1)


def test_a_save_given_the_locked_read_writes_one_new_version_and_its_event(
    personas, subjects, django_assert_max_num_queries
):
    first = _save(personas, subjects["a"], {"age": "54"})
    with transaction.atomic():
        locked = _locked(subjects["a"])
        assert locked.record.pk == first.pk
        # the permission reads, the update, the chain head moved, the event, the head's hash
        with django_assert_max_num_queries(6) as captured:
            saved = _save(personas, subjects["a"], {"age": "55"}, expected_version=1, locked=locked)
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if 'FROM "records_formrecord"' in sql], reads
    assert (saved.version, FormRecord.objects.get().data["age"]) == (2, 55)
    assert verify_all()[1] == []


def test_the_locked_read_still_refuses_a_save_over_a_newer_version(personas, subjects):
    _save(personas, subjects["a"], {"age": "54"})
    _save(personas, subjects["a"], {"age": "60"}, expected_version=1)
    with transaction.atomic():
        locked = _locked(subjects["a"])
        with pytest.raises(EditConflictError):
            _save(personas, subjects["a"], {"age": "55"}, expected_version=1, locked=locked)
    assert FormRecord.objects.get().data["age"] == 60


def test_the_locked_read_still_refuses_a_save_of_a_locked_subject(personas, subjects):
    _save(personas, subjects["a"], {"age": "54"})
    set_subject_lock(actor=personas["data_manager"], subject=subjects["a"], locked=True, reason="closed")
    with transaction.atomic():
        locked = _locked(subjects["a"])
        with pytest.raises(RecordLockedError):
            _save(personas, subjects["a"], {"age": "55"}, expected_version=1, locked=locked)


def test_a_locked_read_of_another_record_is_not_used(personas, subjects):
    _save(personas, subjects["a"], {"age": "54"})
    with transaction.atomic():
        of_a = _locked(subjects["a"])
        saved = _save(personas, subjects["b"], {"age": "40"}, status=Status.INCOMPLETE, locked=of_a)
    assert saved.subject_id == subjects["b"].pk and saved.version == 1


def test_a_locked_read_needs_the_transaction_that_saves(transactional_db, subjects):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        _locked(subjects["a"])
