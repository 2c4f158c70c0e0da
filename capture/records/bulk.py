"""The bulk write path for form records, used by imports. With `services.save_record` it is one of
exactly two ways form data is written; keep it that way.

It applies the same rules as `save_record`, for many records at once:
- values are validated by `FormValidator`, which calls `validation.clean_values` with the form
  compiled once (calculations and branching included);
- the actor must be allowed to enter data at every subject's site;
- a locked record, or any record of a locked subject, is refused, naming it; a record whose version
  moved since the caller read it (a concurrent edit) is refused too;
- a changed record gets version + 1; an unchanged one is not written and not audited;
- each created or changed record gets its own audit event (`record.create` / `record.update`, with
  the same before/after diff as `save_record`), appended to the study's hash chain.
It uses bulk queries (bulk_create / bulk_update, audit events appended in one batch under the
chain head's row lock), and must run inside the caller's transaction so that all of it commits or
none of it does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from capture.audit.models import AuditChain, AuditEvent
from capture.audit.services import chain_key
from capture.definitions.models import Event, FormDefinition
from capture.studies import access
from capture.studies.models import Study, Subject

from .compiled import compiled
from .models import FormRecord, Status, SubjectLock
from .services import RecordLockedError, _diff
from .validation import clean_values

BATCH = 2000


class FormValidator:
    """`clean_values` for one form version, with the form compiled once (capture.records.compiled):
    the very same function data entry uses, so the rules cannot drift apart.

    Expressions that read other events ([baseline][weight]) are given no other events here."""

    def __init__(self, form: FormDefinition):
        self.form = form
        self.compiled = compiled(form)
        self.groups = self.compiled.repeating

    def clean(self, values: dict, *, missing_codes: set[str], complete: bool) -> tuple[dict, dict[str, str]]:
        return clean_values(
            self.form, values, missing_codes=missing_codes, complete=complete, compiled_form=self.compiled
        )


@dataclass
class RecordWrite:
    """One record to create (`existing` None) or change, with its already validated values."""

    subject: Subject
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
    if actor is not None:
        allowed = set(access.sites_visible_to(actor, study).values_list("pk", flat=True))
        if not access.can(actor, "enter_data", study):
            raise PermissionDenied(f"Your role in {study.name} does not allow entering data.")
        for w in writes:
            if w.subject.study_id != study.pk or w.subject.site_id not in allowed:
                raise PermissionDenied(f"You may not enter data for {w.subject.subject_id}.")
    for w in writes:
        if w.status not in Status.values:
            raise ValidationError(f"Unknown status {w.status!r}; use 0, 1 or 2.")
    locked_subjects = locked_subject_ids(study)
    for w in writes:
        if w.subject.pk in locked_subjects:
            raise ValidationError(
                f"{w.subject.subject_id} is locked; a data manager must unlock the subject before its data can change."
            )

    existing_ids = [w.existing_id for w in writes if w.existing_id is not None]
    current: dict[int, FormRecord] = {}
    for start in range(0, len(existing_ids), BATCH):
        chunk = existing_ids[start : start + BATCH]
        for record in (
            FormRecord.objects.select_for_update().filter(pk__in=chunk).select_related("event", "subject")
        ):
            current[record.pk] = record
    user_id = actor.pk if actor is not None and actor.pk else None
    to_create: list[RecordWrite] = []
    to_update: list[FormRecord] = []
    audits: list[tuple] = []  # (action, record id, label, before, after)
    unchanged = 0
    now = timezone.now()
    for w in writes:
        if w.existing_id is None:
            to_create.append(w)
            continue
        record = current.get(w.existing_id)
        if record is None or record.version != w.existing_version:
            raise ValidationError(
                f"{record or w.subject.subject_id} changed while the import was being checked; run the import again."
            )
        before, after = _diff(record.data, w.data)
        if not before and not after and record.status == w.status:
            unchanged += 1
            continue
        if record.locked:
            raise RecordLockedError(record)
        if record.status != w.status:
            before["__status"], after["__status"] = record.status, w.status
        record.data = w.data
        record.status = w.status
        record.version += 1
        record.updated_by_id = user_id
        to_update.append(record)
        audits.append(("record.update", record.pk, _label(w), before, after))
    if to_create:
        stamp = FormRecord._meta.get_field("created_at").get_db_prep_save(now, connection)
        data_field = FormRecord._meta.get_field("data")
        _insert(
            FormRecord,
            [
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
            ],
            [
                (
                    w.subject.pk,
                    w.event.pk,
                    w.form.pk,
                    w.form_name,
                    w.instance,
                    w.status,
                    1,
                    data_field.get_db_prep_save(w.data, connection),
                    False,
                    stamp,
                    stamp,
                    user_id,
                )
                for w in to_create
            ],
        )
        # Read the new ids back by the unique key: portable, where executemany has no RETURNING.
        ids = {
            tuple(key): pk
            for pk, *key in FormRecord.objects.filter(
                subject__study=study, form_name__in={w.form_name for w in to_create}, created_at=now
            ).values_list("pk", "subject_id", "event_id", "form_name", "instance")
        }
        for w in to_create:
            pk = ids[(w.subject.pk, w.event.pk, w.form_name, w.instance)]
            audits.append(("record.create", pk, _label(w), None, {"status": w.status, "data": w.data}))
    if to_update:
        _update(to_update, now)
    append_audit_events(actor=actor, study=study, entries=audits, reason=reason)
    return BulkResult(
        created=len(to_create),
        updated=len(to_update),
        unchanged=unchanged,
        record_ids=[a[1] for a in audits],
    )


def locked_subject_ids(study: Study) -> set[int]:
    """Subjects locked whole (records.SubjectLock): none of their records may change or be created."""
    return set(SubjectLock.objects.filter(subject__study=study).values_list("subject_id", flat=True))


def _label(w: RecordWrite) -> str:
    # The same text as str(FormRecord), which save_record puts in its audit events.
    return f"{w.subject.subject_id} / {w.event.name} / {w.form_name} #{w.instance}"


class _Event(SimpleNamespace):
    """An audit event's fields without a model instance (100,000 of those cost seconds); it hashes
    with AuditEvent's own content() and compute_hash(), so the chain is exactly record_event's."""

    content = AuditEvent.content
    compute_hash = AuditEvent.compute_hash


def append_audit_events(*, actor, study: Study, entries, reason: str) -> None:
    """Append one record event per entry (action, record id, label, before, after) to the study's
    chain, exactly as `record_event` would one by one (same fields, same hash), in one locked batch.
    Values are the validated record values, already plain JSON, so record_event's JSON round trip
    (`_plain`) would change nothing and is skipped."""
    if not entries:
        return
    key = chain_key(study)
    AuditChain.objects.get_or_create(key=key)
    head = AuditChain.objects.select_for_update().get(key=key)
    actor_obj = actor if actor is not None and getattr(actor, "pk", None) else None
    actor_id = actor_obj.pk if actor_obj else None
    label = actor_obj.get_username() if actor_obj else "system"
    now = timezone.now().astimezone(dt.UTC)
    seq, prev = head.last_seq, head.last_hash
    rows = []
    before_field = AuditEvent._meta.get_field("before")
    stamp = AuditEvent._meta.get_field("timestamp").get_db_prep_save(now, connection)
    for action, record_id, object_label, before, after in entries:
        seq += 1
        event = _Event(
            chain=key,
            seq=seq,
            study_id=study.pk,
            actor_id=actor_id,
            actor_label=label,
            timestamp=now,
            action=action,
            object_type="record",
            object_id=str(record_id),
            object_label=object_label[:255],
            before=before,
            after=after,
            reason=reason,
            prev_hash=prev,
        )
        prev = event.compute_hash()
        rows.append(
            (
                key,
                seq,
                study.pk,
                actor_id,
                label,
                stamp,
                action,
                "record",
                event.object_id,
                event.object_label,
                before_field.get_db_prep_save(before, connection),
                before_field.get_db_prep_save(after, connection),
                reason,
                event.prev_hash,
                prev,
            )
        )
    _insert(
        AuditEvent,
        [
            "chain",
            "seq",
            "study",
            "actor",
            "actor_label",
            "timestamp",
            "action",
            "object_type",
            "object_id",
            "object_label",
            "before",
            "after",
            "reason",
            "prev_hash",
            "hash",
        ],
        rows,
    )
    head.last_seq, head.last_hash = seq, prev
    head.save(update_fields=["last_seq", "last_hash"])


def _insert(model, names: list[str], rows: list) -> None:
    """INSERT rows (values already adapted for the database) with the driver's executemany: the ORM's
    bulk_create costs several times more per row (docs/decisions: bulk paths use executemany / COPY)."""
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608 - names come from model metadata, values are parameters
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            cursor.executemany(sql, rows[start : start + BATCH])


def _update(records: list[FormRecord], now) -> None:
    names = ["data", "status", "version", "updated_by", "updated_at"]
    fields = [FormRecord._meta.get_field(name) for name in names]
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
