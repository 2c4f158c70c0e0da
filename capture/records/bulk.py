"""The bulk write path for form records, used by imports. With `services.save_record` it is one of
exactly two ways form data is written; keep it that way.

It applies the same rules as `save_record`, for many records at once:
- values are validated by `FormValidator`, which calls `validation.clean_record` (the one
  validator) with the form compiled once and each field's outcome remembered;
- the actor must be allowed to enter data at every subject's site;
- a locked record, or any record of a locked subject, is refused, naming it; a record whose version
  moved since the caller read it (a concurrent edit) is refused too;
- a changed record gets version + 1; an unchanged one is not written and not audited;
- each created or changed record gets its own audit event (`record.create` / `record.update`, with
  the same before/after diff as `save_record`), appended to the study's hash chain.
It uses bulk statements (COPY on PostgreSQL, executemany elsewhere; audit events through
`audit.services.append_events` under the chain head's row lock, taken after the records are
written, as save_record does), serialises each record's values once for both its row and its
audit event, and must run inside the caller's transaction so that all of it commits or none of
it does.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from capture.accounts.system import require_actor, user_or_none
from capture.audit.services import NewEvent, append_events, canonical_json
from capture.dbcopy import insert_rows as _insert
from capture.definitions.models import Event, FormDefinition
from capture.studies import access
from capture.studies.models import Study, Subject
from capture.studies.services import follow_enrolment_dates

from . import verification
from .compiled import compiled
from .models import FormRecord, Status, SubjectLock
from .services import RecordLockedError, record_changes
from .validation import _clean_one, _shape, clean_record

BATCH = 2000
MEMO_LIMIT = 50_000  # remembered outcomes per field (bounded memory for free-text columns)
BLANK = object()  # a cleaned value that sets nothing (the value was blank)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a bulk import (reading, checking and writing
    its rows). Such an import keeps hundreds of thousands of objects alive at once (rows, values,
    subjects, records), none of them in a reference cycle, and every few hundred allocations the
    collector walks them again: about an eighth of a REDCap migration's CPU time, for nothing it
    could free (benchmarks/migration_bench.py). Reference counting frees memory as usual meanwhile;
    a cycle made during the import is freed by the next collection after it. Nested or concurrent
    use leaves the collector as the outermost caller found it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class FormValidator:
    """`validation.clean_record` for one form version, for many records: the form compiled once,
    and each field's outcome remembered by value through clean_record's `clean_one` hook —
    `_clean_one` is a pure function of the field, the value and the missing-data codes, and an
    import's columns repeat their values (codes, numbers, dates). No step of clean_record is
    repeated here, so an import validates exactly as entry does.

    `cleaner` and `finish` split `clean` in two for a caller that cleans field values as it reads
    them (the import, once per distinct cell): clean(values) == finish(values, *cleaned fields).
    Both take `events`, the subject's other events (`services.other_events`), as save_record does,
    so that [baseline][weight] gives the same result on import as on entry."""

    def __init__(self, form: FormDefinition):
        self.form = form
        self.compiled = c = compiled(form)
        self.groups = c.repeating
        self._fields: dict[str, dict] = {name: {} for name in _shape(c)[0]}
        self._missing: frozenset[str] = frozenset()

    def _codes(self, missing_codes) -> frozenset[str]:
        missing = frozenset(missing_codes)
        if missing != self._missing:
            self._missing = missing
            for memo in self._fields.values():
                memo.clear()
        return missing

    def cleaner(self, name: str, *, missing_codes):
        """For a field `clean` cleans on its own, a function from a value to (clean value, or BLANK
        when the value sets nothing; error or None), for a caller that remembers outcomes itself;
        None for other fields (in a repeating group, calculated, or not of the form)."""
        if name not in self._fields:
            return None
        rule = self.compiled.rules[name]
        missing = frozenset(missing_codes)

        def outcome(raw):
            one: dict = {}
            error: dict[str, str] = {}
            _clean_one(rule, raw, missing, False, one, error, name)
            return one.get(name, BLANK), error.get(name)

        return outcome

    def sharing_key(self, name: str) -> tuple:
        """Fields with equal keys clean every value to the same clean value (their errors differ:
        they name the field), so a caller may share remembered successes between them."""
        rule = self.compiled.rules[name]
        return (
            rule.datatype,
            tuple(rule.codes),
            rule.multiple,
            rule.max_length,
            rule.min_value,
            rule.max_value,
            rule.decimal_places,
        )

    def _remembering(self, rule, raw, missing, complete, clean, errors, where) -> None:
        # clean_record's `clean_one` hook: `_clean_one`, remembered per field for text values
        # (lists — checkboxes — and numbers are cleaned each time).
        if type(raw) is not str:
            _clean_one(rule, raw, missing, complete, clean, errors, where)
            return
        memo = self._fields[where]
        outcome = memo.get(raw)
        if outcome is None:
            one: dict = {}
            error: dict[str, str] = {}
            _clean_one(rule, raw, missing, False, one, error, where)
            outcome = (one.get(where, BLANK), error.get(where))
            if len(memo) < MEMO_LIMIT:
                memo[raw] = outcome
        value, problem = outcome
        if problem is not None:
            errors[where] = problem
        elif value is not BLANK:
            clean[where] = list(value) if type(value) is list else value

    def clean(
        self, values: dict, *, missing_codes, complete: bool, events: dict | None = None
    ) -> tuple[dict, dict[str, str]]:
        missing = self._codes(missing_codes)
        clean, errors, _ = clean_record(
            self.form,
            values,
            missing_codes=missing,
            complete=complete,
            events=events,
            compiled_form=self.compiled,
            clean_one=self._remembering,
        )
        return clean, errors

    def finish(
        self,
        values: dict,
        clean: dict,
        errors: dict[str, str],
        *,
        missing_codes,
        complete: bool,
        events: dict | None = None,
    ) -> tuple[dict, dict[str, str]]:
        """clean_record once the fields of `values` (no repeating group among them) are cleaned
        into `clean` and `errors`: unknown items, calculations and branching, `required`."""
        clean, errors, _ = clean_record(
            self.form,
            values,
            missing_codes=self._codes(missing_codes),
            complete=complete,
            events=events,
            compiled_form=self.compiled,
            cleaned=(clean, errors),
        )
        return clean, errors


class SubjectKey(Protocol):
    """What the bulk path reads of a subject: a Subject, or an import's lighter SubjectRef."""

    @property
    def pk(self) -> int: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def site_id(self) -> int: ...
    @property
    def study_id(self) -> int: ...


@dataclass
class RecordWrite:
    """One record to create (`existing` None) or change, with its already validated values."""

    subject: Subject | SubjectKey
    event: Event
    form: FormDefinition
    form_name: str
    instance: int
    data: dict
    status: int
    existing_id: int | None = None
    existing_version: int | None = None


@dataclass
class BulkResult:
    created: int
    updated: int
    unchanged: int
    record_ids: list[int]


def write_records(*, actor, study: Study, writes: list[RecordWrite], reason: str = "") -> BulkResult:
    """Create or update the records of `writes` and audit each; see the module docstring for the rules."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("write_records must run inside the caller's transaction (all or nothing).")
    _check_writes(require_actor(actor), study, writes)
    user = user_or_none(actor)
    user_id = user.pk if user is not None else None
    now = timezone.now()
    to_create = [w for w in writes if w.existing_id is None]
    to_update, updates, unchanged = _changed_records(writes, _locked_current(writes), user_id)
    if to_update:
        _update(to_update, now)
    record_ids = [int(e.object_id) for e in updates]
    created = _insert_new(to_create, now, user_id)
    record_ids += [pk for pk, _, _ in created]
    # Records first, then the chain (as save_record does), so the chain head is locked briefly.
    append_audit_events(actor=actor, study=study, events=_events(updates, created), reason=reason)
    verification.clear_changed_many(actor, to_update, updates)
    changed = {record.pk for record in to_update}
    follow_enrolment_dates(  # a form that asks the enrolment date keeps the subject's in step
        actor, [(w.subject.pk, w) for w in writes if w.existing_id is None or w.existing_id in changed]
    )
    return BulkResult(
        created=len(to_create), updated=len(to_update), unchanged=unchanged, record_ids=record_ids
    )


def _check_writes(actor, study: Study, writes: list[RecordWrite]) -> None:
    """The actor may enter data at every subject's site; statuses are known; no subject is locked."""
    allowed = set(access.sites_visible_to(actor, study).values_list("pk", flat=True))
    if not access.can(actor, "enter_data", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow entering data.")
    for w in writes:
        if w.subject.study_id != study.pk or w.subject.site_id not in allowed:
            raise PermissionDenied(f"You may not enter data for {w.subject.subject_id}.")
    statuses = set(Status.values)
    for w in writes:
        if w.status not in statuses:
            raise ValidationError(f"Unknown status {w.status!r}; use 0, 1 or 2.")
    locked_subjects = locked_subject_ids(study)
    for w in writes:
        if w.subject.pk in locked_subjects:
            raise ValidationError(
                f"{w.subject.subject_id} is locked; a data manager must unlock the subject before its data can change."
            )


def _locked_current(writes: list[RecordWrite]) -> dict[int, FormRecord]:
    """The stored records the writes change, by id, locked for the rest of the transaction."""
    existing_ids = [w.existing_id for w in writes if w.existing_id is not None]
    current: dict[int, FormRecord] = {}
    for start in range(0, len(existing_ids), BATCH):
        chunk = existing_ids[start : start + BATCH]
        for record in (
            FormRecord.objects.select_for_update().filter(pk__in=chunk).select_related("event", "subject")
        ):
            current[record.pk] = record
    return current


def _changed_records(
    writes: list[RecordWrite], current: dict[int, FormRecord], user_id
) -> tuple[list[FormRecord], list[NewEvent], int]:
    """(the records to update, with their new values and version; their audit events; how many
    are unchanged). Refuses a record that moved since it was read, or a locked one that changes."""
    to_update: list[FormRecord] = []
    updates: list[NewEvent] = []
    unchanged = 0
    for w in writes:
        if w.existing_id is None:
            continue
        record = current.get(w.existing_id)
        if record is None or record.version != w.existing_version:
            raise ValidationError(
                f"{record or w.subject.subject_id} changed while the import was being checked; run the import again."
            )
        before, after = record_changes(record, w.data, w.status)
        if not before:
            unchanged += 1
            continue
        if record.locked:
            raise RecordLockedError(record)
        record.data = w.data
        record.status = w.status
        record.version += 1
        record.updated_by_id = user_id
        to_update.append(record)
        updates.append(
            NewEvent(
                "record.update",
                "record",
                str(record.pk),
                _label(w),
                canonical_json(before, plain=True),
                canonical_json(after, plain=True),
            )
        )
    return to_update, updates, unchanged


def _events(updates: list[NewEvent], created: list[tuple[int, RecordWrite, str]]) -> Iterator[NewEvent]:
    yield from updates
    for pk, w, text in created:
        # {"data": …, "status": …} as canonical_json writes it (keys in order, no spaces).
        yield NewEvent(
            "record.create", "record", str(pk), _label(w), None, f'{{"data":{text},"status":{w.status}}}'
        )


_NEW_COLUMNS = [
    "subject",
    "event",
    "form",
    "form_name",
    "instance",
    "status",
    "version",
    "data",
    "locked",
    "created_at",
    "updated_at",
    "updated_by",
]


def _new_row(w: RecordWrite, text: str, stamp, user_id) -> tuple:
    # The values of _NEW_COLUMNS: version 1, not locked, created and updated now.
    return (
        w.subject.pk,
        w.event.pk,
        w.form.pk,
        w.form_name,
        w.instance,
        w.status,
        1,
        text,
        False,
        stamp,
        stamp,
        user_id,
    )


def _insert_new(writes: list[RecordWrite], now, user_id) -> list[tuple[int, RecordWrite, str]]:
    """Insert the new records a batch at a time; return (id, write, values as canonical JSON) for
    each, so its audit event reuses the text instead of serialising the values again."""
    stamp = FormRecord._meta.get_field("created_at").get_db_prep_save(now, connection)
    if connection.vendor == "postgresql":
        return _copy_new(writes, stamp, user_id)
    out: list[tuple[int, RecordWrite, str]] = []
    for start in range(0, len(writes), BATCH):
        chunk = writes[start : start + BATCH]
        texts = [canonical_json(w.data, plain=True) for w in chunk]
        _insert(
            FormRecord,
            _NEW_COLUMNS,
            [_new_row(w, t, stamp, user_id) for w, t in zip(chunk, texts, strict=True)],
        )
        new_ids = _inserted_ids(chunk, stamp)
        out.extend(zip(new_ids, chunk, texts, strict=True))
    return out


def _copy_new(writes: list[RecordWrite], stamp, user_id) -> list[tuple[int, RecordWrite, str]]:
    # Ids from the table's sequence first, then one COPY fed as the values are serialised
    # (the server parses rows while Python writes the next ones).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [FormRecord._meta.db_table, len(writes)],
        )
        new_ids = [pk for (pk,) in cursor.fetchall()]
    texts: list[str] = []

    def rows() -> Iterator[tuple]:
        for pk, w in zip(new_ids, writes, strict=True):
            text = canonical_json(w.data, plain=True)
            texts.append(text)
            yield (pk, *_new_row(w, text, stamp, user_id))

    _insert(FormRecord, ["id", *_NEW_COLUMNS], rows())
    return list(zip(new_ids, writes, texts, strict=True))


def _inserted_ids(chunk: list[RecordWrite], stamp) -> list[int]:
    """The ids of the rows just inserted for `chunk`, in its order (insert_rows returns none).
    On SQLite, whose one writer this transaction is, the rows of one insert_rows take consecutive
    ids ending at last_insert_rowid(); one count makes sure every id of that range is a row of this
    write. Otherwise (or if the count disagrees) the ids are read back by the unique key."""
    table = connection.ops.quote_name(FormRecord._meta.db_table)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_insert_rowid()")
            last = cursor.fetchone()[0]
            first = last - len(chunk) + 1
            cursor.execute(
                f"SELECT count(*) FROM {table} WHERE id BETWEEN %s AND %s AND created_at = %s",  # noqa: S608 - names from model metadata
                [first, last, stamp],
            )
            if cursor.fetchone()[0] == len(chunk):
                return list(range(first, last + 1))
    subject_ids = list({w.subject.pk for w in chunk})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, subject_id, event_id, form_name, instance FROM {table} "  # noqa: S608 - names from model metadata
            f"WHERE created_at = %s AND subject_id IN ({', '.join(['%s'] * len(subject_ids))})",
            [stamp, *subject_ids],
        )
        found = {tuple(key): pk for pk, *key in cursor.fetchall()}
    return [found[(w.subject.pk, w.event.pk, w.form_name, w.instance)] for w in chunk]


def locked_subject_ids(study: Study) -> set[int]:
    """Subjects locked whole (records.SubjectLock): none of their records may change or be created."""
    return set(SubjectLock.objects.filter(subject__study=study).values_list("subject_id", flat=True))


def _label(w: RecordWrite) -> str:
    # The same text as str(FormRecord), which save_record puts in its audit events.
    return f"{w.subject.subject_id} / {w.event.name} / {w.form_name} #{w.instance}"


def append_audit_events(*, actor, study: Study, events, reason: str) -> None:
    """One record event per created or changed record, on the study's chain (audit.append_events)."""
    append_events(actor=actor, study=study, events=events, reason=reason, batch=BATCH)


def _update(records: list[FormRecord], now) -> None:
    names = ["data", "status", "version", "updated_by", "updated_at"]
    fields: list[Any] = [FormRecord._meta.get_field(name) for name in names]
    sets = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
    sql = f"UPDATE {connection.ops.quote_name(FormRecord._meta.db_table)} SET {sets} WHERE id = %s"  # noqa: S608 - names come from model metadata, values are parameters
    stamp = fields[4].get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        for start in range(0, len(records), BATCH):
            cursor.executemany(
                sql,
                [
                    (
                        fields[0].get_db_prep_save(r.data, connection),
                        r.status,
                        r.version,
                        r.updated_by_id,
                        stamp,
                        r.pk,
                    )
                    for r in records[start : start + BATCH]
                ],
            )
