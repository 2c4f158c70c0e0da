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
    """What the policy needs to know of an item (`Disclosure.record_data` reads the first two),
    and its permissible codes (empty: not coded), against which a filter's literals are checked."""

    datatype: str
    identifier: bool
    codes: tuple[str, ...] = ()


def study_fields(schedule) -> dict[str, dict[str, Field]]:
    """Form name -> item name -> Field, for every form the schedule collects, in schedule order
    (any version: an item that is an identifier or a date in one version counts as one in all;
    its codes are those of every version)."""
    event_forms = (
        EventForm.objects.filter(event__arm__schedule=schedule)
        .select_related("form")
        .order_by("event__arm__order", "event__order", "order")
    )
    forms = list(dict.fromkeys(ef.form for ef in event_forms))
    elements = {
        e.ref: e
        for e in DataElement.objects.filter(forms__in=forms).distinct().prefetch_related("permissible_values")
    }
    fields: dict[str, dict[str, Field]] = {}
    for form in forms:
        items = fields.setdefault(form.name, {})
        for raw in form.items():
            element = elements[raw["element"]]
            seen = items.get(raw["name"])
            datatype = element.datatype
            if seen is not None and seen.datatype in DATE_TYPES:
                datatype = seen.datatype
            codes = tuple(pv.code for pv in element.permissible_values.all())
            items[raw["name"]] = Field(
                datatype=datatype,
                identifier=element.identifier or (seen is not None and seen.identifier),
                codes=tuple(dict.fromkeys((seen.codes if seen else ()) + codes)),
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
        raise ValidationError(
            {"cohort": [f"The cohort filter {expression!r} is not a valid expression: {exc}"]}
        ) from None
    _check_names(expression, policy, fields, event_names, extra_names)
    _check_codes(ast, fields, missing_codes)

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
        raise ValidationError({"cohort": problems})


def _codes_by_name(fields: dict[str, dict[str, Field]]) -> dict[str, tuple[str, ...]]:
    """Item name -> its codes in every form that has it; an item not coded in some form: none."""
    codes: dict[str, tuple[str, ...]] = {}
    plain: set[str] = set()
    for form in fields.values():
        for name, field in form.items():
            if not field.codes:
                plain.add(name)
            codes[name] = tuple(dict.fromkeys(codes.get(name, ()) + field.codes))
    return {name: found for name, found in codes.items() if found and name not in plain}


def _check_codes(ast: dict, fields: dict[str, dict[str, Field]], missing_codes: frozenset) -> None:
    """Refuse `[coded item] = 'x'` (or <>) and `[checkbox(x)]` where x is none of the item's codes:
    such a filter keeps no subject (or all), which is a mistake, not a cohort."""
    codes = _codes_by_name(fields)
    problems = []
    for name, value in _compared_codes(ast):
        known = codes.get(name)
        if known and value != "" and value not in known and value not in missing_codes:
            listed = ", ".join(f"'{code}'" for code in known)
            problems.append(
                f"The cohort filter compares [{name}] with '{value}', which is not one of its codes "
                f"({listed}): it would keep no subject. Use one of the codes (the codebook lists "
                "their meanings)."
            )
    if problems:
        raise ValidationError({"cohort": list(dict.fromkeys(problems))})


def _compared_codes(ast: dict):
    """(item name, literal) for each checkbox code `[item(code)]` and each `[item] = literal`."""
    for node in _nodes(ast):
        if node["t"] == "field" and node["c"] is not None:
            yield node["f"], node["c"]
        if node["t"] == "cmp" and node["op"] in ("=", "<>"):
            for one, other in ((node["a"], node["b"]), (node["b"], node["a"])):
                if one["t"] == "field" and one["c"] is None and other["t"] in ("str", "num"):
                    yield one["f"], other["v"] if other["t"] == "str" else language.to_text(other["v"])


def _nodes(node: dict):
    """Every node of an expression's AST (capture.definitions.expressions' dict tree)."""
    yield node
    for key in ("a", "b"):
        if key in node:
            yield from _nodes(node[key])
    for arg in node.get("args", ()):
        yield from _nodes(arg)


def example(fields: dict[str, dict[str, Field]]) -> str:
    """A cohort filter written with the study's own items, for the builder's help text: a coded
    item equal to its first code, and a number (an age, if the study has one) at least a value."""
    shown = [(name, f) for form in fields.values() for name, f in form.items() if not f.identifier]
    coded = next((f"[{name}] = '{f.codes[0]}'" for name, f in shown if f.codes), None)
    numbers = [name for name, f in shown if f.datatype in ("integer", "decimal") and not f.codes]
    ages = [name for name in numbers if "age" in name.split("_")]
    number = f"[{ages[0]}] >= 18" if ages else (f"[{numbers[0]}] > 0" if numbers else None)
    parts = [part for part in (coded, number) if part]
    return " and ".join(parts)


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
