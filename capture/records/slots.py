"""Where a record sits: the event and form version a subject's arm collects under a form's name.

Every entry request resolves its slot (the subject's arm, an event name, a form name) to the
schedule's Event and EventForm rows and the form version, with the form's element stamp (the
compiled-form cache key, compiled.py). The answer is kept per process once it cannot change:

- a schedule's arms are rebuilt in place only while no subject is enrolled on them, and the
  subject asking is enrolled on its arm (a protected reference), so the arm's events and event
  forms stay as they are;
- a form version and its elements never change once records use them (definitions/loader.py
  refuses), so a slot is kept only when its form version has a record, which the resolving
  query asks in the same statement.

A kept slot is dropped when any definition row is saved or deleted in this process, and after
SLOT_TTL seconds in any case: if every record of a version were deleted and the version then
reloaded in place by another process, no process keeps the old definition longer than that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.db.models.signals import post_delete, post_save

from capture.definitions import models as definitions
from capture.definitions.models import Event, EventForm
from capture.studies.models import Subject

from .compiled import remember_stamp, stamp_annotations
from .models import FormRecord

SLOT_TTL = 300.0  # seconds


@dataclass(frozen=True)
class Slot:
    """Where a record sits: the event and form (with its version) valid for the subject."""

    event: Event
    event_form: EventForm


_kept: dict[tuple[int, str, str], tuple[float, Slot]] = {}
_lock = threading.Lock()


def resolve_slot(subject: Subject, event_name: str, form_name: str) -> Slot:
    """The slot of `form_name` at `event_name` on the subject's arm, or ValidationError."""
    key = (subject.arm_id, event_name, form_name)
    kept = _kept.get(key)
    if kept is not None and time.monotonic() - kept[0] < SLOT_TTL:
        return kept[1]
    # One arm, one event name: ordering by the event form's own order is the Meta ordering,
    # without its joins to the arm and schedule.
    event_form = (
        EventForm.objects.select_related("event", "form")
        .filter(event__arm=subject.arm_id, event__name=event_name, form__name=form_name)
        .annotate(
            **stamp_annotations("form"),
            form_used=Exists(FormRecord.objects.filter(form=OuterRef("form")).order_by()),
        )
        .order_by("order", "pk")
        .first()
    )
    if event_form is None:
        raise ValidationError(
            f"Form {form_name!r} is not collected at event {event_name!r} for {subject} (arm {subject.arm.name})."
        )
    stamp = cast(Any, event_form)  # stamp_annotations' names, which the type checker cannot see
    remember_stamp(event_form.form, stamp.elements_loaded_at, stamp.elements_count)
    slot = Slot(event_form.event, event_form)
    if event_form.form_used:
        with _lock:
            _kept[key] = (time.monotonic(), slot)
    return slot


def is_slot_of(slot: Slot | None, subject: Subject, event_name: str, form_name: str) -> bool:
    # A slot is read from the schedule's rows: the subject's arm, the event's name and the
    # form's name make it the one resolve_slot would find.
    return (
        slot is not None
        and slot.event.arm_id == subject.arm_id
        and slot.event.name == event_name
        and slot.event_form.event_id == slot.event.pk
        and slot.event_form.form.name == form_name
    )


def forget_slots(**_kwargs) -> None:
    """Drop every kept slot (a definition row changed in this process)."""
    with _lock:
        _kept.clear()


for _model in (
    definitions.Schedule,
    definitions.Arm,
    definitions.Event,
    definitions.EventForm,
    definitions.FormDefinition,
    definitions.DataElement,
):
    post_save.connect(forget_slots, sender=_model, dispatch_uid=f"records.slots.saved.{_model.__name__}")
    post_delete.connect(forget_slots, sender=_model, dispatch_uid=f"records.slots.deleted.{_model.__name__}")
