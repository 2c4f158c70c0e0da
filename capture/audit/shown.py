"""Audit events as one user may see them: the disclosure policy applied to the audit trail.

The REST audit feed and the REDCap log read events through `shown_events`; they never show a
stored `before`/`after`, `timestamp` or `hash` themselves. In the identified world an event is
shown as stored. In the de-identified world (capture/studies/disclosure.py):

- the event's subject is found (a subject event by its id, a record or query event by its record,
  or the subject id its label starts with, an imaging assignment by the subject it names);
- its timestamp moves by that subject's shift, and is withheld (None) when it has no subject;
- record values go through `Disclosure.record_data` (identifier items left out, dates shifted),
  an enrolment date through `Disclosure.date`, a query's text on an identifier item is masked,
  the hash of a source identifier (imaging) is withheld;
- the chain hash is withheld: it covers the real timestamp, so with the other (known) content of
  an event it would confirm a guessed shift;
- the label of an imaging ingest or copy is withheld: the folder or server it read or wrote is
  often named after a patient; so is an identified export's cohort expression, which may compare
  identifier items with real values.

If you add an audit event that carries a subject's values, teach `_values` its shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from capture.studies.disclosure import MASK, WITHHELD, Disclosure

from .models import AuditEvent

SUBJECT_TYPES = ("subject", "record", "query")
# Object types whose label is not shown in the de-identified world (see the module's docstring).
HIDDEN_LABELS = ("imaging",)


@dataclass(frozen=True)
class ShownEvent:
    """One audit event as the user sees it; `event` is the stored row (read only its plain fields:
    seq, actor_label, action, object_type, object_id, reason; the label is `object_label` here)."""

    event: AuditEvent
    subject: Any  # the Subject the event is about, or None
    timestamp: dt.datetime | None
    object_label: str
    before: Any
    after: Any
    hash: str | None


@dataclass(frozen=True)
class _Item:
    datatype: str
    identifier: bool


def shown_events(
    events: Iterable[AuditEvent], policy: Disclosure, study, items: dict | None = None
) -> list[ShownEvent]:
    """`events` (of `study`) as `policy` shows them, in the same order. `items` is
    `study_items(study)` when the caller reads events in batches and has it already."""
    events = list(events)
    if policy.identified:
        return [ShownEvent(e, None, e.timestamp, e.object_label, e.before, e.after, e.hash) for e in events]
    subjects = _subjects_of(events, study)
    items = study_items(study) if items is None else items
    shown = []
    for e in events:
        subject = subjects.get(e.pk)
        shown.append(
            ShownEvent(
                event=e,
                subject=subject,
                timestamp=policy.timestamp(subject, e.timestamp),
                object_label=WITHHELD if e.object_type in HIDDEN_LABELS else e.object_label,
                before=_values(policy, subject, items, e, e.before),
                after=_values(policy, subject, items, e, e.after),
                hash=None,
            )
        )
    return shown


def study_items(study) -> dict[str, _Item]:
    """Every item name of every version of the study's forms, with its datatype and whether it
    identifies a person (an identifier in any version counts as one)."""
    from capture.definitions.models import DataElement, FormDefinition

    names = FormDefinition.objects.filter(event_forms__event__arm__schedule=study.schedule).values("name")
    forms = list(FormDefinition.objects.filter(name__in=names))
    elements = {e.ref: e for e in DataElement.objects.filter(forms__in=forms).distinct()}
    items: dict[str, _Item] = {}
    for form in forms:
        for item in form.items():
            element = elements.get(item["element"])
            if element is None:
                continue
            known = items.get(item["name"])
            items[item["name"]] = _Item(
                datatype=element.datatype
                if known is None or element.datatype in ("date", "datetime")
                else known.datatype,
                identifier=element.identifier or (known is not None and known.identifier),
            )
    return items


def _label_subject_id(event: AuditEvent) -> str:
    # Record labels are "<subject> / <event> / <form> #<n>", query labels "<record label> · <item>".
    return event.object_label.split(" / ")[0].split(" · ")[0]


def _subjects_of(events: list[AuditEvent], study) -> dict[int, Any]:
    """event pk -> the Subject it is about (absent when it is about none), in two queries."""
    from capture.records.models import FormRecord
    from capture.studies.models import Subject

    record_pks: dict[int, int] = {}  # event pk -> record pk
    subject_pks: dict[int, int] = {}  # event pk -> subject pk
    subject_ids: dict[int, str] = {}  # event pk -> subject id (label, or named in the values)
    for e in events:
        if e.object_type == "subject" and e.object_id.isdigit():
            subject_pks[e.pk] = int(e.object_id)
        elif e.object_type == "record" and e.object_id.isdigit():
            record_pks[e.pk] = int(e.object_id)
        elif (
            e.object_type == "query"
            and isinstance(e.after, dict)
            and str(e.after.get("record", "")).isdigit()
        ):
            record_pks[e.pk] = int(e.after["record"])
        elif e.object_type == "imaging_study" and isinstance(e.after, dict) and e.after.get("subject"):
            subject_ids[e.pk] = str(e.after["subject"])
        if e.object_type in SUBJECT_TYPES and e.pk not in subject_pks:
            subject_ids.setdefault(e.pk, _label_subject_id(e))
    owners = dict(
        FormRecord.objects.filter(pk__in=set(record_pks.values()), subject__study=study).values_list(
            "pk", "subject_id"
        )
    )
    for event_pk, record_pk in record_pks.items():
        if record_pk in owners:  # a deleted record is found by its label
            subject_pks[event_pk] = owners[record_pk]
    found = Subject.objects.filter(study=study).filter(
        Q(pk__in=set(subject_pks.values())) | Q(subject_id__in=set(subject_ids.values()))
    )
    by_pk: dict[int | None, Subject] = {}
    by_id: dict[str | None, Subject] = {}
    for subject in found.only("pk", "subject_id", "date_shift_days"):
        by_pk[subject.pk], by_id[subject.subject_id] = subject, subject
    out = {}
    for e in events:
        owner = by_pk.get(subject_pks.get(e.pk)) or by_id.get(subject_ids.get(e.pk))
        if owner is not None:
            out[e.pk] = owner
    return out


def _values(policy: Disclosure, subject, items: dict[str, _Item], event: AuditEvent, values):
    """A stored `before` or `after` as the de-identified world shows it."""
    if not isinstance(values, dict):
        return values
    kind, verb = event.object_type, event.action.rsplit(".", 1)[-1]
    if subject is None and kind in SUBJECT_TYPES:
        return None  # about a subject no longer found: its dates could not be shifted
    if kind == "record" and verb == "update":
        # A diff: item name -> value, plus "__status" and other bookkeeping keys.
        meta = {k: v for k, v in values.items() if k.startswith("__")}
        return {**policy.record_data(subject, items, values), **meta}
    if kind == "record" and isinstance(values.get("data"), dict):  # create, delete: {"status", "data", ...}
        return {**values, "data": policy.record_data(subject, items, values["data"])}
    if kind == "subject" and "enrollment_date" in values:
        return {**values, "enrollment_date": policy.date(subject, values["enrollment_date"])}
    if kind == "subject" and "hash" in values:  # the hash of a source identifier (an MRN)
        return {**values, "hash": WITHHELD}
    spec = values.get("spec")
    if kind in ("job", "export") and isinstance(spec, dict) and spec.get("identified") and spec.get("cohort"):
        # An identified export's cohort may compare identifier items with real values.
        return {**values, "spec": {**spec, "cohort": WITHHELD}}
    if kind == "query" and "text" in values:
        item = items.get(str(values.get("field", "")).split(".")[-1].split("[")[0])  # "group[row].item"
        if item is not None and item.identifier:
            return {**values, "text": MASK}
    return values
