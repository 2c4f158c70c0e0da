"""Which events, forms and items an export holds: the spec resolved against the schedule.

`select(study, spec, deid)` checks every name the spec gives (an unknown event, form or item is
an error that lists the choices), keeps the newest scheduled version of each form, and drops
the items the export may not show (identifiers in a de-identified export, free text on
request), saying why in `Selection.dropped` (the manifest lists them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from capture.definitions.models import DataElement, EventForm
from capture.studies.models import Study

from .columns import ElementInfo, Item
from .deidentify import Deidentifier
from .spec import ExportSpec


@dataclass
class Dropped:
    item: str
    reason: str


@dataclass
class Selection:
    events: list  # Event rows, schedule order
    event_forms: dict[int, list[EventForm]]  # event id -> selected event forms
    forms: dict[str, list[Item]]  # form name -> selected items
    form_refs: dict[str, str]  # form name -> name@version exported
    dropped: list[Dropped] = field(default_factory=list)


def select(study: Study, spec: ExportSpec, deid: Deidentifier) -> Selection:
    events = _events(study, spec)
    all_efs = list(
        EventForm.objects.filter(event__arm__schedule=study.schedule)
        .select_related("form", "event")
        .order_by("event__arm__order", "event__order", "order")
    )
    wanted_items = _wanted_items(spec)
    chosen = _chosen_forms(spec, wanted_items, {ef.form.name for ef in all_efs})
    event_ids = {e.pk for e in events}
    event_forms: dict[int, list[EventForm]] = defaultdict(list)
    for ef in all_efs:
        if ef.event_id in event_ids and ef.form.name in chosen:
            event_forms[ef.event_id].append(ef)
    definitions = _newest_forms(all_efs, chosen)
    elements = {
        e.ref: e
        for e in DataElement.objects.filter(forms__in=list(definitions.values()))
        .distinct()
        .prefetch_related("permissible_values")
    }
    forms: dict[str, list[Item]] = {}
    dropped: list[Dropped] = []
    for name, form in sorted(definitions.items(), key=lambda kv: _first_use(all_efs, kv[0])):
        items = _asked_items(name, form, elements, wanted_items.get(name, set()))
        forms[name] = _shown_items(items, spec, deid, dropped)
    return Selection(
        events=[e for e in events if event_forms.get(e.pk)],
        event_forms=dict(event_forms),
        forms=forms,
        form_refs={name: form.ref for name, form in definitions.items()},
        dropped=dropped,
    )


def _events(study: Study, spec: ExportSpec) -> list:
    """The schedule's events in order, narrowed to the spec's."""
    events = [e for arm in study.schedule.arms.all() for e in arm.events.all()]
    event_names = {e.name for e in events}
    unknown = sorted(set(spec.events) - event_names)
    if unknown:
        raise ValidationError(
            f"Event(s) {', '.join(unknown)} are not in the study's schedule; "
            f"choose from {', '.join(sorted(event_names))}."
        )
    if spec.events:
        events = [e for e in events if e.name in spec.events]
    return events


def _wanted_items(spec: ExportSpec) -> dict[str, set[str]]:
    """Form name -> the item names the spec asks for ("form.item" references)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for ref in spec.items:
        form_name, _, item_name = ref.partition(".")
        wanted[form_name].add(item_name)
    return wanted


def _chosen_forms(spec: ExportSpec, wanted_items: dict, form_names: set[str]) -> set[str]:
    asked_forms = set(spec.forms) | set(wanted_items)
    unknown = sorted(asked_forms - form_names)
    if unknown:
        raise ValidationError(
            f"Form(s) {', '.join(unknown)} are not collected in this study; "
            f"choose from {', '.join(sorted(form_names))}."
        )
    return asked_forms or form_names


def _newest_forms(all_efs: list[EventForm], chosen: set[str]) -> dict:
    """Form name -> definition: a form may be scheduled at several versions; export the newest."""
    definitions: dict = {}
    for ef in all_efs:
        name = ef.form.name
        if name in chosen and (name not in definitions or ef.form.pk > definitions[name].pk):
            definitions[name] = ef.form
    return definitions


def _asked_items(name: str, form, elements: dict, wanted: set[str]) -> list[Item]:
    items = [_item(form, raw, elements[raw["element"]]) for raw in form.items()]
    known = {i.name for i in items}
    bad = sorted(wanted - known)
    if bad:
        raise ValidationError(
            f"Form {name} has no item(s) {', '.join(bad)}; its items are {', '.join(sorted(known))}."
        )
    if wanted:
        items = [i for i in items if i.name in wanted]
    return items


def _shown_items(
    items: list[Item], spec: ExportSpec, deid: Deidentifier, dropped: list[Dropped]
) -> list[Item]:
    """The items the export shows; the others go to `dropped` with the reason."""
    kept = []
    for item in items:
        ref = f"{item.form}.{item.name}"
        if deid.hides(item.element):
            dropped.append(Dropped(ref, "identifier (de-identified export)"))
        elif item.free_text and spec.drop_free_text:
            dropped.append(Dropped(ref, "free text (dropped on request)"))
        else:
            kept.append(item)
    return kept


def _first_use(event_forms, form_name: str) -> int:
    for n, ef in enumerate(event_forms):
        if ef.form.name == form_name:
            return n
    return len(event_forms)


def _item(form, raw: dict, element: DataElement) -> Item:
    info = ElementInfo(
        public_id=element.public_id,
        version=element.version,
        name=element.name,
        long_name=element.long_name,
        question=element.question,
        datatype=element.datatype,
        unit=element.unit,
        identifier=element.identifier,
        codes=tuple((pv.code, pv.meaning, pv.concept_code) for pv in element.permissible_values.all()),
    )
    return Item(
        form=form.name,
        form_version=form.version,
        form_title=form.title,
        name=raw["name"],
        label=raw.get("label") or element.question,
        element=info,
        group=raw["group"] if raw["repeating"] else None,
        repeating=bool(raw["repeating"]),
        checkbox=raw.get("widget") == "checkbox",
    )
