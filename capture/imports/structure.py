"""The study's schedule as an import sees it, and the mapping suggested for a new file.

`StudyForms` turns the schedule into lookups (events per arm, forms per event, items per form) read
once per import; `suggest_mapping` starts a mapping from the site's last one, the REDCap layout or the
headers matched to item names, questions and aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from capture.definitions.models import DataElement, Event, EventForm, FormDefinition
from capture.studies.models import Site, Study, Subject

from . import readers
from .mapping import ColumnSpec, Mapping, is_redcap_export, redcap_mapping, suggest_columns
from .uploads import remembered_mapping


class SubjectRef(NamedTuple):
    """What an import needs of a subject; model instances for 100,000 subjects cost seconds."""

    pk: int
    subject_id: str
    site_id: int
    arm_id: int
    study_id: int
    arm_name: str


@dataclass
class StudyForms:
    """The study's schedule as lookups: events per arm, forms per event, items per form."""

    events: dict[tuple[int, str], Event]  # (arm id, event name) → Event
    event_forms: dict[tuple[int, str], EventForm]  # (event id, form name) → EventForm
    forms: dict[str, FormDefinition]  # form name → a version used by the schedule
    items: dict[str, dict[str, dict]]  # form name → item name → item
    elements: dict[str, DataElement]  # element ref → element

    @classmethod
    def of(cls, study: Study) -> StudyForms:
        event_forms = list(
            EventForm.objects.filter(event__arm__schedule=study.schedule).select_related("event", "form")
        )
        forms: dict[str, FormDefinition] = {}
        for ef in event_forms:
            forms.setdefault(ef.form.name, ef.form)
        refs = {item["element"] for form in forms.values() for item in form.items()}
        elements = {
            e.ref: e
            for e in DataElement.objects.filter(forms__in=list(forms.values())).prefetch_related(
                "permissible_values"
            )
            if e.ref in refs
        }
        return cls(
            events={(ef.event.arm_id, ef.event.name): ef.event for ef in event_forms},
            event_forms={(ef.event_id, ef.form.name): ef for ef in event_forms},
            forms=forms,
            items={name: {i["name"]: i for i in form.items()} for name, form in forms.items()},
            elements=elements,
        )

    def targets(self) -> list[dict]:
        out = []
        for form_name, items in self.items.items():
            for item_name, item in items.items():
                element = self.elements.get(item["element"])
                texts = [item_name, item.get("label") or ""]
                if element is not None:
                    texts += [
                        element.name,
                        element.long_name,
                        element.question,
                        *element.spec.get("aliases", []),
                    ]
                out.append(
                    {
                        "form": form_name,
                        "item": item_name,
                        "texts": texts,
                        "datatype": element.datatype if element is not None else "",
                    }
                )
        return out

    def forms_by_kind(self, study: Study) -> dict[str, set[str]]:
        """Subject kind (patient, animal) → the forms its arms collect."""
        kinds = dict(study.schedule.arms.values_list("pk", "subject_kind"))
        arm_of = {event.pk: arm_pk for (arm_pk, _), event in self.events.items()}
        out: dict[str, set[str]] = {}
        for event_pk, form_name in self.event_forms:
            out.setdefault(kinds[arm_of[event_pk]], set()).add(form_name)
        return out

    def choices(self) -> list[tuple[str, str]]:
        """(form.item, label) for a select of targets."""
        out = []
        for form_name, items in self.items.items():
            for item_name, item in items.items():
                element = self.elements.get(item["element"])
                label = item.get("label") or (element.question if element else item_name)
                out.append(
                    (f"{form_name}.{item_name}", f"{self.forms[form_name].title} › {label} ({item_name})")
                )
        return out

    def event_names(self) -> list[str]:
        seen = []
        for _, name in self.events:
            if name not in seen:
                seen.append(name)
        return seen


def suggest_mapping(study: Study, table: readers.Table, *, site: Site | None = None) -> dict:
    """A mapping spec to start from: the site's last mapping if it fits the file, the REDCap layout for a
    REDCap export, otherwise headers matched to items by name, question and aliases."""
    return suggest_for_headers(study, table.headers, numeric_headers(table), site=site)


def suggest_for_headers(
    study: Study, headers: list[str], not_dates: set[str], *, site: Site | None = None
) -> dict:
    """suggest_mapping for a file known by its headers and its numeric columns (`numeric_headers`),
    as the mapping page keeps them (facts.FileFacts)."""
    structure = StudyForms.of(study)
    remembered = remembered_mapping(study, site)
    if remembered is not None:
        wanted = {c["column"] for c in remembered.spec.get("columns", [])}
        if wanted and wanted <= set(headers):
            return remembered.spec
    if is_redcap_export(headers):
        return redcap_spec(structure, headers)
    suggested = _suggest_for_one_kind(structure, study, headers, not_dates)
    subject_column = next(
        (
            h
            for h in headers
            if re.search(r"\b(subject|record|patient|participant|study|tcia)\b.*\b(id|code)\b|^id$", h, re.I)
        ),
        headers[0] if headers else "",
    )
    events = structure.event_names()
    return Mapping(
        subject_column=subject_column,
        event=events[0] if events else "",
        columns=[
            mapping_column(h, s["form"], s["item"]) for h, s in suggested.items() if h != subject_column
        ],
    ).to_spec()


def numeric_headers(table: readers.Table, rows: int = 50) -> set[str]:
    """The headers whose first filled cells are all numbers (a day count, never a date)."""
    out = set()
    for index, header in enumerate(table.headers):
        cells = [
            c for _, row in table.rows[:rows] if index < len(row) for c in [row[index]] if c not in (None, "")
        ]
        if cells and all(_is_number(c) for c in cells):
            out.add(header)
    return out


def _is_number(cell) -> bool:
    if isinstance(cell, bool):
        return False
    if isinstance(cell, int | float):
        return True
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", str(cell).strip()))


def _suggest_for_one_kind(
    structure: StudyForms, study: Study, headers: list[str], not_dates: set[str]
) -> dict[str, dict]:
    """Headers matched to the forms of one subject kind: a sheet is about patients or about animal
    models, never both (a patient sheet's "Sex" is not the model's sex). The kind whose forms match
    the headers best wins; patients on a tie."""
    targets = structure.targets()
    best: tuple[float, dict] = (-1.0, {})
    for kind, _ in Subject.KINDS:
        forms = structure.forms_by_kind(study).get(kind)
        if not forms:
            continue
        found = suggest_columns(headers, [t for t in targets if t["form"] in forms], not_dates)
        score = sum(s["score"] for s in found.values())
        if score > best[0]:
            best = (score, found)
    return best[1]


def mapping_column(header: str, form: str, item: str) -> ColumnSpec:
    return ColumnSpec(column=header, form=form, item=item)


def redcap_spec(structure: StudyForms, headers: list[str]) -> dict:
    items: dict[str, list] = {}
    for form_name, form_items in structure.items.items():
        for name, item in form_items.items():
            items.setdefault(name, []).append((form_name, item.get("group")))
    events = structure.event_names()
    return redcap_mapping(headers, items, events, events[0] if events else "").to_spec()
