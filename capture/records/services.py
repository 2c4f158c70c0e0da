"""The record service: the only write path for form data.

`save_record` validates against the form's value domains, refuses a save over a
newer version (optimistic locking) or onto a locked record, writes the whole
record and its audit row in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from capture.audit.services import record_event
from capture.definitions.models import Event, EventForm
from capture.studies import access
from capture.studies.models import Subject

from .models import FormRecord, Status
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
    def __init__(self, record: FormRecord):
        self.record = record
        super().__init__(f"{record} is locked; a data manager must unlock it before it can change.")


@dataclass(frozen=True)
class Slot:
    """Where a record sits: the event and form (with its version) valid for the subject."""

    event: Event
    event_form: EventForm


def resolve_slot(subject: Subject, event_name: str, form_name: str) -> Slot:
    event_form = (
        EventForm.objects.select_related("event", "form")
        .filter(event__arm=subject.arm, event__name=event_name, form__name=form_name)
        .first()
    )
    if event_form is None:
        raise ValidationError(
            f"Form {form_name!r} is not collected at event {event_name!r} for {subject} (arm {subject.arm.name})."
        )
    return Slot(event_form.event, event_form)


def _diff(before: dict, after: dict) -> tuple[dict, dict]:
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in changed}, {k: after.get(k) for k in changed}


@transaction.atomic
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
) -> FormRecord:
    """Create or replace the values of one form record.

    `expected_version` is the version the user started from (None for a new record);
    a different current version raises EditConflictError and writes nothing.
    """
    study = subject.study
    if actor is not None and not access.may_act_at_site(actor, "enter_data", study, subject.site):
        raise PermissionDenied(f"You may not enter data for {subject}.")
    if status not in Status.values:
        raise ValidationError(f"Unknown status {status!r}; use 0, 1 or 2.")
    slot = resolve_slot(subject, event_name, form_name)
    if instance < 1 or (instance > 1 and not slot.event_form.repeating):
        raise ValidationError(
            f"Form {form_name!r} does not repeat at {event_name!r}; its only instance is 1."
        )

    record = (
        FormRecord.objects.select_for_update()
        .filter(subject=subject, event=slot.event, form_name=form_name, instance=instance)
        .first()
    )
    if record is not None and record.version != expected_version:
        raise EditConflictError(record)
    if record is None and expected_version is not None:
        raise ValidationError(f"{subject} / {event_name} / {form_name} #{instance} no longer exists.")
    if record is not None and record.locked:
        raise RecordLockedError(record)

    form = record.form if record is not None else slot.event_form.form
    clean, errors = clean_values(
        form, values, missing_codes=study.missing_code_set(), complete=status == Status.COMPLETE
    )
    if errors:
        raise RecordValidationError(errors)

    if record is None:
        record = FormRecord.objects.create(
            subject=subject,
            event=slot.event,
            form=form,
            form_name=form_name,
            instance=instance,
            status=status,
            data=clean,
            updated_by=actor if actor and actor.pk else None,
        )
        record_event(
            actor=actor,
            study=study,
            action="record.create",
            object_type="record",
            object_id=record.pk,
            object_label=str(record),
            after={"status": status, "data": clean},
            reason=reason,
        )
        return record
    before, after = _diff(record.data, clean)
    if not before and not after and record.status == status:
        return record  # nothing changed: no new version, no audit noise
    if record.status != status:
        before["__status"], after["__status"] = record.status, status
    record.data = clean
    record.status = status
    record.version += 1
    record.updated_by = actor if actor and actor.pk else None
    record.save(update_fields=["data", "status", "version", "updated_by", "updated_at"])
    record_event(
        actor=actor,
        study=study,
        action="record.update",
        object_type="record",
        object_id=record.pk,
        object_label=str(record),
        before=before,
        after=after,
        reason=reason,
    )
    return record
