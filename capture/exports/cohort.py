"""Cohort filter: keep the subjects for whom an expression is true.

The expression is written in the study's branching-logic language
(`capture.definitions.expressions`), e.g. `[sex] = '1' and [age] >= 18`. It sees every item
of every form record of the subject: `values` holds each item's value (a later event's
value wins over an earlier one), and `events` the same per event name, for expressions
that name the event (`[baseline][age]`). The study's missing-data codes count as missing.
`[imaging_study_count]`, `[modality_count]` and `[imaging_modalities]`
(e.g. `contains([imaging_modalities], 'PT')`) describe the subject's imaging.

The filter runs on the values the export's disclosure policy (capture/studies/disclosure.py)
lets its user see, never on stored ones: which subjects an export keeps is itself data the
user receives, so a filter on a value they may not see would reveal it (one export per bit of
a date of birth recovers it exactly). In a de-identified export an expression that names an
identifier item is refused before anything runs, and dates compare shifted by each subject's
date shift — the dates the export writes. Every name must be an item or event of the study:
a misspelt name is an error, not an empty export.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from capture.definitions import expressions as language
from capture.definitions.models import DataElement, EventForm
from capture.studies.disclosure import DATE_TYPES, Disclosure

IMAGING_NAMES = frozenset({"imaging_study_count", "modality_count", "imaging_modalities"})


@dataclass(frozen=True)
class Field:
    """What the policy needs to know of an item (`Disclosure.record_data` reads these two)."""

    datatype: str
    identifier: bool


def study_fields(schedule) -> dict[str, dict[str, Field]]:
    """Form name -> item name -> Field, for every form the schedule collects (any version: an
    item that is an identifier or a date in one version counts as one in all)."""
    forms = {ef.form for ef in EventForm.objects.filter(event__arm__schedule=schedule).select_related("form")}
    elements = {e.ref: e for e in DataElement.objects.filter(forms__in=list(forms)).distinct()}
    fields: dict[str, dict[str, Field]] = {}
    for form in forms:
        items = fields.setdefault(form.name, {})
        for raw in form.items():
            element = elements[raw["element"]]
            seen = items.get(raw["name"])
            datatype = element.datatype
            if seen is not None and seen.datatype in DATE_TYPES:
                datatype = seen.datatype
            items[raw["name"]] = Field(
                datatype=datatype, identifier=element.identifier or (seen is not None and seen.identifier)
            )
    return fields


def compile_cohort(
    expression: str,
    missing_codes: frozenset,
    *,
    policy: Disclosure,
    fields: dict[str, dict[str, Field]],
    event_names: set[str],
    extra_names: frozenset = frozenset(),
) -> Callable:
    """A predicate keep(subject, records, event names by id, extra) for `expression`, checked
    against the study's items (`fields`, from `study_fields`), events and the export's
    `policy`; raises ValidationError saying how to fix a bad expression."""
    try:
        ast = language.parse(expression)
    except language.ExpressionError as exc:
        raise ValidationError(f"The cohort filter {expression!r} is not a valid expression: {exc}") from None
    _check_names(expression, policy, fields, event_names, extra_names)

    def keep(subject, records: dict, events_by_id: dict[int, str], extra: dict | None = None) -> bool:
        values: dict = dict(extra or {})
        events: dict[str, dict] = {}
        # Records arrive keyed (event id, form, instance); event ids follow schedule order.
        for (event_id, form, _instance), (_status, data) in sorted(records.items(), key=lambda kv: kv[0]):
            # The record as the export's user may see it: no hidden identifier, dates shifted.
            flat = _flatten(policy.record_data(subject, fields.get(form, {}), data))
            values.update(flat)
            events.setdefault(events_by_id.get(event_id, str(event_id)), {}).update(flat)
        try:
            result = language.evaluate_ast(ast, values, events=events, missing_codes=missing_codes)
        except language.ExpressionError as exc:
            raise ValidationError(
                f"The cohort filter could not be evaluated for subject {subject.subject_id}: {exc}. "
                "Fix the expression (check item names and types)."
            ) from None
        return bool(result)

    return keep


def _check_names(expression, policy, fields, event_names, extra_names) -> None:
    used = language.fields_used(expression)
    items = {name: field for form in fields.values() for name, field in form.items()}
    problems = []
    hidden = sorted(
        name for name in used if any(policy.hides(form[name]) for form in fields.values() if name in form)
    )
    if hidden:
        listed = ", ".join(f"[{name}]" for name in hidden)
        problems.append(
            f"The cohort filter reads {listed}: identifier item(s), which a de-identified export leaves "
            "out. The subjects a filter keeps are part of the export, so it may not read values the export "
            "hides. Remove them from the filter, or ask for an identified export (it needs the "
            "export_identified right and a reason)."
        )
    known = set(items) | set(extra_names)
    for name in sorted(used - known):
        problems.append(
            f"The cohort filter names [{name}], which is not an item of this study{_hint(name, known)}."
        )
    for name in sorted(language.events_used(expression) - set(event_names)):
        problems.append(
            f"The cohort filter names the event [{name}], which is not in the study's schedule; "
            f"its events are {', '.join(sorted(event_names))}."
        )
    if problems:
        raise ValidationError(problems)


def _hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    if close:
        return "; did you mean " + " or ".join(f"[{c}]" for c in close) + "?"
    return " (the codebook of an export without a filter lists every item)"


def _flatten(data: dict) -> dict:
    """A record's values with each repeating group's items as lists (how sum([x]) reads them)."""
    flat: dict = {}
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            for row in value:
                for name, item_value in row.items():
                    flat.setdefault(name, []).append(item_value)
        else:
            flat[key] = value
    return flat
