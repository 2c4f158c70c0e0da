"""Source data verification: a monitor marks a form, or single fields, verified against source.

A mark is a `Verification` row and an audit event (`record.verify`). A later change of a
verified value clears the mark in the transaction that changes it (`clear_changed`, called by
`services.save_record` and `bulk.write_records`, every write path): the row keeps who changed
what and when (`cleared_reason`), and the audit gets `record.verification_cleared`. A change of
the form's status alone, or of a field that was not verified, leaves a field's mark alone.

The reason names fields and versions, never values: it is shown to every role that sees the
form, and values go through the disclosure policy (the field history shows them).
"""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from capture.accounts.system import is_system, require_actor, user_or_none
from capture.audit.services import record_event
from capture.studies import access

from .compiled import compiled
from .models import FormRecord, Verification

FORM = ""  # the `field` of a whole-form verification


def may_verify(user, record: FormRecord) -> bool:
    subject = record.subject
    return access.may_act_at_site(user, "verify_data", subject.study, subject.site)


def active(record: FormRecord) -> list[Verification]:
    """The record's marks that still hold (the form's first), with their verifier."""
    found = record.verifications.filter(cleared_at=None).select_related("verified_by")
    return sorted(found, key=lambda v: (v.field != FORM, v.field))


def _top_key(record: FormRecord, field: str) -> str:
    # A field of a repeating group is stored under its group's name.
    return compiled(record.form).grouped.get(field, field)


@transaction.atomic
def verify(*, actor, record: FormRecord, field: str = FORM) -> Verification:
    """Mark the form (or one field) verified at its current version; a mark that holds already
    for this version is returned as it is."""
    require_actor(actor)
    if is_system(actor):
        raise PermissionDenied("Only a person may verify source data; run the command with --as USER.")
    if not may_verify(actor, record):
        raise PermissionDenied(f"Your role does not allow you to verify data of {record.subject}.")
    subject = record.subject
    record = FormRecord.objects.select_for_update().get(pk=record.pk)
    record.subject = subject
    if field != FORM and field not in compiled(record.form).rules:
        raise ValidationError(f"{field!r} is not a field of {record.form.ref}.")
    held = record.verifications.filter(cleared_at=None, field=field).first()
    if held is not None and held.record_version == record.version:
        return held
    if held is not None:  # an old mark the save path did not clear (e.g. a status change)
        held.cleared_at, held.cleared_by = timezone.now(), user_or_none(actor)
        held.cleared_reason = f"Verified again at version {record.version}."
        held.save(update_fields=["cleared_at", "cleared_by", "cleared_reason"])
    values = dict(record.data) if field == FORM else {field: record.data.get(_top_key(record, field))}
    mark = Verification.objects.create(
        record=record, field=field, record_version=record.version, values=values, verified_by=actor
    )
    _audit(actor, record, "record.verify", {"field": field or "(form)", "version": record.version})
    return mark


def clear_changed(actor, record: FormRecord, before: dict) -> list[Verification]:
    """Clear the record's marks that the change `before` (old values by key, as
    services.record_changes gives) touches; called inside the saving transaction."""
    changed = sorted(k for k in before if not k.startswith("__"))
    # `verified` is annotated by the save path's locked read: False spares the query.
    if not changed or getattr(record, "verified", True) is False:
        return []
    cleared = []
    for mark in record.verifications.filter(cleared_at=None):
        touched = changed if mark.field == FORM else [k for k in changed if k == _top_key(record, mark.field)]
        if not touched:
            continue
        mark.cleared_at, mark.cleared_by = timezone.now(), user_or_none(actor)
        mark.cleared_reason = (
            f"{', '.join(touched)} changed in version {record.version} by {actor.get_username()}"
            f" after it was verified (version {mark.record_version})."
        )
        mark.save(update_fields=["cleared_at", "cleared_by", "cleared_reason"])
        _audit(
            actor,
            record,
            "record.verification_cleared",
            {"field": mark.field or "(form)", "changed": touched, "version": record.version},
        )
        cleared.append(mark)
    return cleared


def clear_changed_many(actor, records: list[FormRecord], events) -> None:
    """`clear_changed` for a bulk write: `events` are its record.update audit events (their
    `before` canonical JSON names the changed keys). One query when nothing was verified."""
    by_pk = {r.pk: r for r in records}
    verified = set(
        Verification.objects.filter(record_id__in=list(by_pk), cleared_at=None).values_list(
            "record_id", flat=True
        )
    )
    for event in events:
        pk = int(event.object_id)
        if pk in verified:
            clear_changed(actor, by_pk[pk], json.loads(event.before))


def _audit(actor, record: FormRecord, action: str, after: dict) -> None:
    record_event(
        actor=actor,
        study=record.subject.study,
        action=action,
        object_type="record",
        object_id=record.pk,
        object_label=str(record),
        after=after,
    )
