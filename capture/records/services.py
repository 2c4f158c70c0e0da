"""The record service: the only write path for form data (with `bulk.write_records` for imports).

`save_record` validates against the form's value domains, applies calculations and
branching (logic.py), refuses a save over a newer version (optimistic locking), onto a
locked record or subject, or onto a Complete record without a reason for the change; it
writes the whole record and its audit row in one transaction.

The rules of a record live here and in validation.py, once, for entry, the spreadsheet import
and both APIs: `validation.clean_record` is the one validator (bulk.FormValidator calls it with a
memo), `record_changes` / `is_unchanged` the one diff, `merge_values` the one merge of new values
over stored ones, and `other_events` / `SubjectEvents` what cross-event expressions read.

Also here, each under `transaction.atomic` with its audit row: deleting a record (every
caller's one delete), removing a repeating instance, locking a record or a whole subject, a PI's
e-signature, and queries.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from capture.accounts.system import is_system, require_actor, user_or_none
from capture.audit.services import record_event
from capture.definitions.models import EventForm
from capture.studies import access
from capture.studies.models import Subject
from capture.studies.services import follow_enrolment_date, require_writable

from . import verification
from .compiled import compiled
from .models import FormRecord, Query, QueryMessage, Signature, Status, SubjectLock, Verification
from .slots import Slot, is_slot_of, resolve_slot
from .validation import clean_values


class RecordValidationError(ValidationError):
    def __init__(self, errors: dict[str, str]):
        self.field_errors = errors
        super().__init__([f"{k}: {v}" for k, v in errors.items()])


class EditConflictError(Exception):
    """The record changed since the user loaded it; nothing was written."""

    def __init__(self, current: FormRecord):
        self.current = current
        super().__init__(
            f"{current} was changed (now version {current.version}) since you opened it; review both values."
        )


class RecordLockedError(Exception):
    def __init__(self, record: FormRecord | None, *, subject: Subject | None = None):
        self.record = record
        self.subject = subject
        if subject is not None:
            message = (
                f"{subject} is locked; a data manager must unlock the subject before its data can change."
            )
        else:
            message = f"{record} is locked; a data manager must unlock it before it can change."
        super().__init__(message)


class ReasonRequiredError(ValidationError):
    """A change to a Complete record needs a reason (kept in the audit trail)."""

    def __init__(self):
        super().__init__(
            "This form is Complete: give a reason for the change (it is kept in the audit trail)."
        )


def _diff(before: dict, after: dict) -> tuple[dict, dict]:
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in changed}, {k: after.get(k) for k in changed}


# The one diff and the one merge of a record, for entry, the spreadsheet import and both APIs.


def record_changes(record: FormRecord, data: dict, status: int) -> tuple[dict, dict]:
    """(before, after) of what writing clean `data` with `status` changes in the stored `record`:
    the values that differ (an absent value and a null one are the same), and "__status" when the
    status differs. Both empty: the record is unchanged, and is neither written nor audited."""
    before, after = _diff(record.data, data)
    if record.status != status:
        before["__status"], after["__status"] = record.status, status
    return before, after


def is_unchanged(record: FormRecord | None, data: dict, status: int) -> bool:
    """Whether writing clean `data` with `status` leaves the stored `record` as it is (see
    record_changes); a record not yet stored (None) is always changed."""
    if record is None or record.status != status:
        return False
    stored = record.data
    return stored == data or all(stored.get(k) == data.get(k) for k in stored.keys() | data.keys())


def merge_values(stored: dict, values: dict, *, groups, blanks=(), overwrite: bool = False) -> dict:
    """A stored record's values with new ones over them, as an import applies a row: a repeating
    group's new values come as {row number: {item: value}} and change only the items given; a
    blank — (group or None, row number, item) in `blanks` — clears a value only when `overwrite`.
    `stored` is not changed."""
    merged = copy.deepcopy(stored)
    for name, value in values.items():
        if isinstance(value, dict) and name in groups:
            rows = merged.setdefault(name, [])
            for index, row_values in sorted(value.items()):
                while len(rows) < index:
                    rows.append({})
                rows[index - 1] = {**rows[index - 1], **row_values}
        else:
            merged[name] = value
    if overwrite:
        for group, index, name in blanks:
            if group:
                rows = merged.get(group) or []
                if index <= len(rows):
                    rows[index - 1].pop(name, None)
            elif name not in values:
                merged.pop(name, None)
    return merged


def save_record(
    *,
    actor,
    subject: Subject,
    event_name: str,
    form_name: str,
    values: dict,
    status: int = Status.INCOMPLETE,
    instance: int = 1,
    expected_version: int | None = None,
    reason: str = "",
    slot: Slot | None = None,
    locked: LockedRecord | None = None,
) -> FormRecord:
    """Create or replace the values of one form record.

    `expected_version` is the version the user started from (None for a new record);
    a different current version raises EditConflictError and writes nothing. `slot` is
    `resolve_slot(subject, event_name, form_name)` when the caller has it already; `locked`,
    `lock_record(...)` of the same record when the caller read it in its own transaction (the
    entry page's POST), so the record is read once. Every error is raised before anything is
    written, so such a caller's transaction may go on after catching one.
    """
    require_actor(actor)
    if not access.may_act_at_site(actor, "enter_data", subject.study, subject.site):
        raise PermissionDenied(f"You may not enter data for {subject}.")
    require_writable(subject.study, "save data")
    if status not in Status.values:
        raise ValidationError(f"Unknown status {status!r}; use 0, 1 or 2.")
    if slot is None or not is_slot_of(slot, subject, event_name, form_name):
        slot = resolve_slot(subject, event_name, form_name)
    if instance < 1 or (instance > 1 and not slot.event_form.repeating):
        raise ValidationError(
            f"Form {form_name!r} does not repeat at {event_name!r}; its only instance is 1."
        )
    where = _Where(subject, slot, form_name, instance)
    if locked is not None and locked.key == where.key and transaction.get_connection().in_atomic_block:
        return _save(actor, where, locked.record, values, status, expected_version, reason)
    with transaction.atomic():
        record = _read_locked(where)
        return _save(actor, where, record, values, status, expected_version, reason)


def _save(actor, where, record, values: dict, status: int, expected_version, reason: str) -> FormRecord:
    record = _writable(where, record, expected_version)
    form = record.form if record is not None else where.slot.event_form.form
    clean = _validated(form, values, where.subject, status, record)
    if record is None:
        saved = _create(actor, where, form, clean, status, reason)
    else:
        saved = _update(actor, record, clean, status, reason)
    follow_enrolment_date(actor, where.subject, saved)  # the form is its one source (studies)
    return saved


@dataclass(frozen=True)
class _Where:
    """The record a save writes: the subject, its slot, the form's name and the instance."""

    subject: Subject
    slot: Slot
    form_name: str
    instance: int

    @property
    def key(self) -> tuple:
        return (self.subject.pk, self.slot.event.pk, self.form_name, self.instance)

    def records(self):
        return FormRecord.objects.filter(
            subject=self.subject, event=self.slot.event, form_name=self.form_name, instance=self.instance
        )

    def __str__(self) -> str:
        return f"{self.subject} / {self.slot.event.name} / {self.form_name} #{self.instance}"


@dataclass(frozen=True)
class LockedRecord:
    """A record read FOR UPDATE by `lock_record` in the caller's transaction (None: not saved yet)."""

    key: tuple
    record: FormRecord | None


def lock_record(subject: Subject, slot: Slot, form_name: str, instance: int) -> LockedRecord:
    """The record at `slot`, locked for the rest of the caller's transaction, for a page that
    shows it and then hands it to save_record (`locked=`): with its editor and whether it has
    open queries, as entry_page.find_record reads it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_record must run inside the transaction that saves the record.")
    where = _Where(subject, slot, form_name, instance)
    return LockedRecord(where.key, _read_locked(where, for_page=True))


def _read_locked(where: _Where, *, for_page: bool = False) -> FormRecord | None:
    """The stored record, locked for the rest of the transaction, with whether its subject is
    locked (`subject_locked`); None if not saved yet."""
    # No ORDER BY: the Meta ordering would join, and so lock FOR UPDATE, the subject, study,
    # event, arm and schedule rows too, which serialised every save in a study and deadlocked
    # concurrent ones on PostgreSQL; OF self keeps the page's join to the editor unlocked. The
    # lookup is unique. The subject's lock is read in the same statement; should a subject lock
    # commit while this waits for the row, the row it then reads carries `locked` (locking a
    # subject sets it on every record).
    found = (
        where.records()
        .select_for_update(of=("self",))
        .annotate(
            subject_locked=Exists(SubjectLock.objects.filter(subject=where.subject)),
            # Whether a verification mark may need clearing (verification.clear_changed).
            verified=Exists(Verification.objects.filter(record=OuterRef("pk"), cleared_at=None)),
        )
    )
    if for_page:
        open_queries = Query.objects.filter(record=OuterRef("pk")).exclude(status=Query.CLOSED)
        found = found.select_related("updated_by").annotate(has_open_queries=Exists(open_queries))
    record = next(iter(found.order_by()[:1]), None)
    if record is not None:
        # The rows it points at are loaded already (its label and the audit row name them).
        record.subject, record.event = where.subject, where.slot.event
        if record.form_id == where.slot.event_form.form_id:
            record.form = where.slot.event_form.form
    return record


def _writable(where: _Where, record: FormRecord | None, expected_version: int | None) -> FormRecord | None:
    """`record`, unless it moved past `expected_version` or it or its subject is locked."""
    if record is None:
        if expected_version is not None:
            raise ValidationError(f"{where} no longer exists.")
        if SubjectLock.objects.filter(subject=where.subject).exists():
            raise RecordLockedError(None, subject=where.subject)
        return None
    if record.version != expected_version:
        raise EditConflictError(record)
    if record.locked:
        raise RecordLockedError(record)
    if cast(Any, record).subject_locked:  # annotated by _read_locked
        raise RecordLockedError(record, subject=where.subject)
    return record


def _validated(form, values: dict, subject: Subject, status: int, record: FormRecord | None) -> dict:
    """The clean values (validation.clean_values, with the subject's other events), or
    RecordValidationError."""
    compiled_form = compiled(form)
    clean, errors = clean_values(
        form,
        values,
        missing_codes=subject.study.missing_code_set(),
        complete=status == Status.COMPLETE,
        events=other_events(subject, form, exclude=record, compiled_form=compiled_form),
        compiled_form=compiled_form,
    )
    if errors:
        raise RecordValidationError(errors)
    return clean


def _create(actor, where: _Where, form, clean: dict, status: int, reason: str) -> FormRecord:
    try:
        # A savepoint: two first saves of one record race to this insert (there is no row to
        # lock yet); the loser's unique violation becomes the edit conflict it is.
        with transaction.atomic():
            record = FormRecord.objects.create(
                subject=where.subject,
                event=where.slot.event,
                form=form,
                form_name=where.form_name,
                instance=where.instance,
                status=status,
                data=clean,
                updated_by=user_or_none(actor),
            )
    except IntegrityError:
        current = where.records().select_for_update().order_by().first()
        if current is None:
            raise
        raise EditConflictError(current) from None
    _audit_record(actor, record, "record.create", None, {"status": status, "data": clean}, reason)
    return record


def _update(actor, record: FormRecord, clean: dict, status: int, reason: str) -> FormRecord:
    before, after = record_changes(record, clean, status)
    if not before:
        return record  # nothing changed: no new version, no audit noise
    if record.status == Status.COMPLETE and not reason.strip():
        raise ReasonRequiredError()
    record.data = clean
    record.status = status
    record.version += 1
    record.updated_by = user_or_none(actor)
    record.save(update_fields=["data", "status", "version", "updated_by", "updated_at"])
    _audit_record(actor, record, "record.update", before, after, reason)
    verification.clear_changed(actor, record, before)
    return record


def _audit_record(actor, record: FormRecord, action: str, before, after, reason: str = "") -> None:
    record_event(
        actor=actor,
        study=record.subject.study,
        action=action,
        object_type="record",
        object_id=record.pk,
        object_label=str(record),
        before=before,
        after=after,
        reason=reason,
    )


def other_events(
    subject: Subject, form, *, exclude: FormRecord | None, compiled_form=None
) -> dict[str, dict] | None:
    """The subject's values by event name, for expressions such as [baseline][weight].

    Read only when the form's expressions name an event (one query). Each event's forms are
    merged; of a repeating form, the first instance counts. `compiled_form` is `compiled(form)`
    when the caller has it already."""
    if not (compiled_form or compiled(form)).events_read:
        return None
    records = FormRecord.objects.filter(subject=subject).order_by("-instance", "pk")
    if exclude is not None:
        records = records.exclude(pk=exclude.pk)
    return _events_of(records.values_list("pk", "event__name", "data"), None)


def _events_of(rows, exclude_pk) -> dict[str, dict]:
    # rows: (record id, event name, data), by instance descending: the first instance wins.
    events: dict[str, dict] = {}
    for pk, event_name, data in rows:
        if pk != exclude_pk:
            events.setdefault(event_name, {}).update(data)
    return events


class SubjectEvents:
    """`other_events` for many subjects, read in one query (the spreadsheet import)."""

    def __init__(self, subject_ids):
        self._rows: dict[int, list] = {}
        ids = list(subject_ids)
        for start in range(0, len(ids), 2000):
            found = (
                FormRecord.objects.filter(subject_id__in=ids[start : start + 2000])
                .order_by("-instance", "pk")
                .values_list("subject_id", "pk", "event__name", "data")
            )
            for subject_id, *row in found:
                self._rows.setdefault(subject_id, []).append(row)

    def of(self, subject_id: int, *, exclude: FormRecord | None) -> dict[str, dict]:
        """The subject's values by event name, without the record `exclude` (as other_events)."""
        return _events_of(self._rows.get(subject_id, ()), exclude.pk if exclude is not None else None)


def _require_at_site(actor, codename: str, subject: Subject, what: str) -> None:
    if not access.may_act_at_site(require_actor(actor), codename, subject.study, subject.site):
        raise PermissionDenied(f"Your role does not allow you to {what} for {subject}.")
    require_writable(subject.study, what)


def _require_person(actor, what: str) -> None:
    # A lock, a signature and a query thread name the person behind them (a required user row).
    if is_system(actor):
        raise PermissionDenied(f"Only a person may {what}; run the command with --as USER.")


def _require_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(f"Give a reason to {what}; it is kept in the audit trail.")
    return reason


def assert_writable(subject: Subject, record: FormRecord | None = None) -> None:
    """Raise RecordLockedError if the record or its subject is locked (for other write paths)."""
    if record is not None and record.locked:
        raise RecordLockedError(record)
    if SubjectLock.objects.filter(subject=subject).exists():
        raise RecordLockedError(record, subject=subject)


def delete_instance(*, actor, record: FormRecord, reason: str) -> None:
    """Remove one instance of a repeating form (a treatment line entered by mistake), the entry page's way.

    Instance 1 of a non-repeating form is not removed this way; `delete_record` says who may
    delete it and when."""
    _require_at_site(actor, "enter_data", record.subject, "remove form instances")
    if not _repeats(record):
        raise ValidationError(
            f"{record.form_name} does not repeat at {record.event.name}; it cannot be removed."
        )
    delete_record(actor=actor, record=record, reason=reason)


def _repeats(record: FormRecord) -> bool:
    return EventForm.objects.filter(event=record.event, form__name=record.form_name, repeating=True).exists()


@transaction.atomic
def set_record_lock(*, actor, record: FormRecord, locked: bool, reason: str) -> FormRecord:
    subject = record.subject
    _require_at_site(actor, "lock_records", subject, "lock or unlock records")
    reason = _require_reason(reason, "lock or unlock")
    record = FormRecord.objects.select_for_update().get(pk=record.pk)
    if record.locked == locked:
        return record
    if not locked and SubjectLock.objects.filter(subject=subject).exists():
        raise ValidationError(f"{subject} is locked as a whole; unlock the subject instead.")
    record.locked = locked
    record.save(update_fields=["locked", "updated_at"])
    record.subject = subject
    action = "record.lock" if locked else "record.unlock"
    _audit_record(actor, record, action, {"locked": not locked}, {"locked": locked}, reason)
    return record


@transaction.atomic
def set_subject_lock(*, actor, subject: Subject, locked: bool, reason: str) -> None:
    """Lock every record of the subject and refuse new ones; unlocking gives back what it locked."""
    _require_at_site(actor, "lock_records", subject, "lock or unlock subjects")
    _require_person(actor, "lock or unlock a subject")
    reason = _require_reason(reason, "lock or unlock the subject")
    current = SubjectLock.objects.select_for_update().filter(subject=subject).first()
    if locked == (current is not None):
        return
    if locked:
        ids = list(FormRecord.objects.filter(subject=subject, locked=False).values_list("pk", flat=True))
        FormRecord.objects.filter(pk__in=ids).update(locked=True)
        SubjectLock.objects.create(subject=subject, locked_by=actor, reason=reason, record_ids=ids)
    else:
        assert current is not None  # locked == False here, and it was locked
        ids = current.record_ids
        FormRecord.objects.filter(pk__in=ids).update(locked=False)
        current.delete()
    record_event(
        actor=actor,
        study=subject.study,
        action="subject.lock" if locked else "subject.unlock",
        object_type="subject",
        object_id=subject.pk,
        object_label=str(subject),
        after={"locked": locked, "records": ids},
        reason=reason,
    )


SIGNATURE_MEANING = "I have reviewed this form and confirm its data are accurate and complete."


def may_sign(user, subject: Subject) -> bool:
    """Signing is the investigator's attestation: the sign_records permission, at the subject's site."""
    return access.may_act_at_site(user, "sign_records", subject.study, subject.site)


@transaction.atomic
def sign_record(*, actor, record: FormRecord, password: str) -> Signature:
    """A PI's e-signature: the password is asked again, the version signed is kept."""
    subject = record.subject
    _require_person(require_actor(actor), "sign a record")
    require_writable(subject.study, "sign a record")
    if not may_sign(actor, subject):
        raise PermissionDenied(f"Only the study's principal investigator may sign records of {subject}.")
    if not password or not actor.check_password(password):
        raise ValidationError("The password is not correct. Type the password you log in with.")
    record = FormRecord.objects.select_for_update().get(pk=record.pk)
    if record.status != Status.COMPLETE:
        raise ValidationError("Only a Complete form can be signed; ask the site to complete it first.")
    signature = Signature.objects.create(
        record=record, signer=actor, record_version=record.version, meaning=SIGNATURE_MEANING
    )
    record.subject = subject
    _audit_record(
        actor, record, "record.sign", None, {"version": record.version, "meaning": SIGNATURE_MEANING}
    )
    return signature


def field_exists(record: FormRecord, field: str) -> bool:
    rules = compiled(record.form).rules
    name = field.split(".")[-1] if "[" in field else field
    return name in rules


@transaction.atomic
def open_query(*, actor, record: FormRecord, field: str, text: str) -> Query:
    subject = record.subject
    _require_at_site(actor, "verify_data", subject, "raise queries")
    _require_person(actor, "raise a query")
    if not field_exists(record, field):
        raise ValidationError(f"{field!r} is not a field of {record.form.ref}.")
    text = (text or "").strip()
    if not text:
        raise ValidationError("Write the question for the site.")
    query = Query.objects.create(record=record, field=field, opened_by=actor)
    QueryMessage.objects.create(query=query, author=actor, action="opened", text=text)
    _audit_query(actor, query, "query.open", text)
    return query


# What a query move needs in words, when the text is missing (see Query.TRANSITIONS).
_QUERY_TEXT_NEEDED = {
    Query.ANSWER: "Write your answer (what was corrected, or why the value is right).",
    Query.REOPEN: "Say what is still unclear when you reopen a query.",
}
_QUERY_DONE = {Query.ANSWER: "answered", Query.CLOSE: "closed", Query.REOPEN: "reopened"}


@transaction.atomic
def move_query(*, actor, query: Query, action: str, text: str = "") -> Query:
    """Answer, close or reopen a query, as Query.TRANSITIONS allows for its state and the actor's
    role at the subject's site; anything else is refused with what to do instead."""
    subject = query.record.subject
    _require_person(require_actor(actor), "answer, close or reopen a query")
    query = Query.objects.select_for_update().get(pk=query.pk)
    if action == Query.CLOSE and query.status == Query.CLOSED:
        return query  # a second click on Close changes nothing
    move = Query.TRANSITIONS.get((query.status, action))
    if move is None:
        allowed = [a for (state, a) in Query.TRANSITIONS if state == query.status]
        raise ValidationError(
            f"A query that is {query.status} cannot be {_QUERY_DONE.get(action, action)}; "
            f"it can be {' or '.join(_QUERY_DONE[a] for a in allowed)}."
        )
    permission, status = move
    _require_at_site(actor, permission, subject, f"{action} queries")
    text = (text or "").strip()
    if not text and action in _QUERY_TEXT_NEEDED:
        raise ValidationError(_QUERY_TEXT_NEEDED[action])
    query.status = status
    query.save(update_fields=["status", "updated_at"])
    done = _QUERY_DONE[action]
    QueryMessage.objects.create(query=query, author=actor, action=done, text=text or "Closed.")
    query.record.subject = subject
    _audit_query(actor, query, f"query.{action}", text)
    return query


def answer_query(*, actor, query: Query, text: str) -> Query:
    return move_query(actor=actor, query=query, action=Query.ANSWER, text=text)


def close_query(*, actor, query: Query, text: str = "", reopen: bool = False) -> Query:
    """Close a query (or reopen it, with a new question)."""
    return move_query(actor=actor, query=query, action=Query.REOPEN if reopen else Query.CLOSE, text=text)


def _audit_query(actor, query: Query, action: str, text: str) -> None:
    record_event(
        actor=actor,
        study=query.record.subject.study,
        action=action,
        object_type="query",
        object_id=query.pk,
        object_label=f"{query.record} · {query.field}",
        after={"record": query.record_id, "field": query.field, "status": query.status, "text": text},
    )


# Deleting a whole record is not part of any data-entry role: only study administrators may.
# Data entry may remove an extra instance of a repeating form (`delete_instance`).
DELETE_PERMISSION = "manage_study"


@transaction.atomic
def delete_record(*, actor, record: FormRecord, reason: str) -> None:
    """Delete one form record: the only delete, for the entry page, the REST and the REDCap API.

    Refused without a reason, for a locked record or subject, a signed record (the signature
    attests its values) and one with queries (their thread would lose its record). The values
    are kept in the audit event, with the reason."""
    subject = record.subject
    if not _may_delete(actor, record):
        raise PermissionDenied(f"You may not delete records of {subject}; a study administrator can.")
    require_writable(subject.study, "delete a record")
    reason = _require_reason(reason, "delete this record")
    # By primary key, without select_related: only this row is locked (see save_record).
    record = FormRecord.objects.select_for_update().get(pk=record.pk)
    assert_writable(subject, record)
    if record.signatures.exists():
        raise ValidationError(
            f"{record} is signed; it cannot be deleted. Keep it, or correct it and sign again."
        )
    if record.queries.exists():
        raise ValidationError(f"{record} has queries; close them and keep the record, or ask a data manager.")
    snapshot = {"status": record.status, "version": record.version, "data": record.data}
    pk, label = record.pk, str(record)
    record.delete()
    record_event(
        actor=actor,
        study=subject.study,
        action="record.delete",
        object_type="record",
        object_id=pk,
        object_label=label,
        before=snapshot,
        reason=reason,
    )


def _may_delete(actor, record: FormRecord) -> bool:
    subject = record.subject
    if access.may_act_at_site(require_actor(actor), DELETE_PERMISSION, subject.study, subject.site):
        return True
    return access.may_act_at_site(actor, "enter_data", subject.study, subject.site) and _repeats(record)
