"""Cohort filter: keep the subjects for whom an expression is true.

The expression is written in the study's branching-logic language
(`capture.definitions.expressions`), e.g. `[sex] = '1' and [age] >= 18`. It sees every item
of every form record of the subject: `values` holds each item's value (a later event's
value wins over an earlier one), and `events` the same per event name, for expressions
that name the event (`[baseline][age]`). The study's missing-data codes count as missing.
With the imaging app, `[imaging_study_count]`, `[modality_count]` and `[imaging_modalities]`
(e.g. `contains([imaging_modalities], 'PT')`) describe the subject's imaging.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError


def _language():
    try:
        from capture.definitions import expressions
    except ImportError:
        return None
    return expressions


def available() -> bool:
    return _language() is not None


def compile_cohort(expression: str, missing_codes: frozenset) -> Callable:
    language = _language()
    if language is None:
        raise ValidationError(
            "Cohort filters need the expression language (capture.definitions.expressions), which this "
            "installation does not have yet. Leave the cohort filter empty, or choose subjects by id."
        )
    try:
        language.parse(expression)
    except language.ExpressionError as exc:
        raise ValidationError(f"The cohort filter {expression!r} is not a valid expression: {exc}") from None

    def keep(subject, records: dict, event_names: dict[int, str], extra: dict | None = None) -> bool:
        values: dict = dict(extra or {})
        events: dict[str, dict] = {}
        # Records arrive keyed (event id, form, instance); event ids follow schedule order.
        for (event_id, _form, _instance), (_status, data) in sorted(records.items(), key=lambda kv: kv[0]):
            flat = _flatten(data)
            values.update(flat)
            events.setdefault(event_names.get(event_id, str(event_id)), {}).update(flat)
        try:
            result = language.evaluate(expression, values, events=events, missing_codes=missing_codes)
        except language.ExpressionError as exc:
            raise ValidationError(
                f"The cohort filter could not be evaluated for subject {subject.subject_id}: {exc}. "
                "Fix the expression (check item names and types)."
            ) from None
        return bool(result)

    return keep


def _flatten(data: dict) -> dict:
    """A record's values with each repeating group's items as lists (how sum([x]) reads them)."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            for row in value:
                for name, item_value in row.items():
                    flat.setdefault(name, []).append(item_value)
        else:
            flat[key] = value
    return flat
