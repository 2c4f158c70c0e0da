"""Validate and normalise a form's values against its items' value domains.

Used by data entry, imports and the API alike, so one rule holds everywhere.
Values are stored as JSON: text as strings, integers as ints, decimals as
floats, dates as ISO strings, booleans as "1"/"0" (REDCap's yes/no), a
checkbox as a sorted list of codes, a repeating group as a list of row dicts.
A study's missing-data code (e.g. "UNK") is accepted in any field and stored as
that code, distinct from a blank.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from capture.definitions.models import DataElement, FormDefinition

BLANK = ("", None, [])


@dataclass(frozen=True)
class FieldRule:
    name: str
    label: str
    datatype: str
    codes: dict[str, str]
    multiple: bool
    required: bool
    max_length: int | None
    min_value: str
    max_value: str
    decimal_places: int | None


def rules_for(form: FormDefinition) -> dict[str, FieldRule]:
    """Every item of the form as a FieldRule, by item name (one query for the elements)."""
    items = form.items()
    refs = {item["element"] for item in items}
    elements = {
        e.ref: e
        for e in DataElement.objects.filter(forms=form).prefetch_related("permissible_values")
        if e.ref in refs
    }
    rules = {}
    for item in items:
        element = elements[item["element"]]
        rules[item["name"]] = FieldRule(
            name=item["name"],
            label=item.get("label") or element.question,
            datatype=element.datatype,
            codes={pv.code: pv.meaning for pv in element.permissible_values.all()},
            multiple=item.get("widget") == "checkbox",
            required=bool(item.get("required")),
            max_length=element.max_length,
            min_value=element.min_value,
            max_value=element.max_value,
            decimal_places=element.decimal_places,
        )
    return rules


def _clean_scalar(rule: FieldRule, raw):
    if isinstance(raw, str):
        raw = raw.strip()
    if rule.multiple:
        values = raw if isinstance(raw, list) else [v for v in str(raw).split(",") if v.strip()]
        values = sorted({str(v).strip() for v in values})
        unknown = [v for v in values if v not in rule.codes]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not one of the choices")
        return values
    if rule.codes:
        code = str(raw)
        if code not in rule.codes:
            raise ValueError(f"{code!r} is not one of the choices ({', '.join(rule.codes)})")
        return code
    kind = rule.datatype
    if kind == "text":
        text = str(raw)
        if rule.max_length and len(text) > rule.max_length:
            raise ValueError(f"is {len(text)} characters long; at most {rule.max_length} are allowed")
        return text
    if kind == "integer":
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if number != number.to_integral_value():
            raise ValueError(f"{raw!r} is not a whole number")
        _check_range(rule, number)
        return int(number)
    if kind == "decimal":
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"{raw!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{raw!r} is not a number")
        # Trailing zeros are not extra precision: "12.50" has one decimal place.
        if rule.decimal_places is not None and -number.normalize().as_tuple().exponent > rule.decimal_places:  # type: ignore[operator]
            raise ValueError(f"has more than {rule.decimal_places} decimal place(s)")
        _check_range(rule, number)
        return float(number)
    if kind == "date":
        try:
            value = dt.date.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)") from None
        if rule.min_value and value.isoformat() < rule.min_value:
            raise ValueError(f"is before {rule.min_value}")
        if rule.max_value and value.isoformat() > rule.max_value:
            raise ValueError(f"is after {rule.max_value}")
        return value.isoformat()
    if kind == "datetime":
        try:
            value = dt.datetime.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
        return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
    if kind == "time":
        try:
            value = dt.time.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not a time (HH:MM)") from None
        return value.isoformat(timespec="minutes")
    if kind == "boolean":
        text = str(raw).lower()
        if text in ("1", "true", "yes"):
            return "1"
        if text in ("0", "false", "no"):
            return "0"
        raise ValueError(f"{raw!r} is not yes or no")
    return str(raw)  # file: the stored file's name


def _check_range(rule: FieldRule, number: Decimal) -> None:
    if rule.min_value and number < Decimal(rule.min_value):
        raise ValueError(f"is below the minimum {rule.min_value}")
    if rule.max_value and number > Decimal(rule.max_value):
        raise ValueError(f"is above the maximum {rule.max_value}")


def clean_values(
    form: FormDefinition, values: dict, *, missing_codes: set[str], complete: bool
) -> tuple[dict, dict[str, str]]:
    """Return (clean values, errors by item name). Required items are enforced when
    the record is being marked complete; an incomplete record may have blanks."""
    rules = rules_for(form)
    groups = {}
    for section in form.spec["sections"]:
        for entry in section["items"]:
            if "group" in entry and entry["repeating"]:
                groups[entry["group"]] = entry
    clean: dict = {}
    errors: dict[str, str] = {}
    for key in values:
        if key not in rules and key not in groups:
            errors[key] = f"{key!r} is not an item of form {form.ref}"
    grouped = {item["name"] for g in groups.values() for item in g["items"]}
    for name, rule in rules.items():
        if name in grouped:
            continue
        _clean_one(rule, values.get(name), missing_codes, complete, clean, errors, name)
    for group_name, group in groups.items():
        rows = values.get(group_name) or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            errors[group_name] = "must be a list of rows"
            continue
        if group.get("max_repeats") and len(rows) > group["max_repeats"]:
            errors[group_name] = f"has {len(rows)} rows; at most {group['max_repeats']} are allowed"
        clean_rows = []
        for index, row in enumerate(rows):
            clean_row: dict = {}
            for item in group["items"]:
                _clean_one(
                    rules[item["name"]],
                    row.get(item["name"]),
                    missing_codes,
                    complete,
                    clean_row,
                    errors,
                    f"{group_name}[{index + 1}].{item['name']}",
                )
            extra = set(row) - {item["name"] for item in group["items"]}
            for key in sorted(extra):
                errors[f"{group_name}[{index + 1}].{key}"] = f"{key!r} is not an item of group {group_name}"
            if any(v not in BLANK for v in clean_row.values()):
                clean_rows.append(clean_row)
        if clean_rows:
            clean[group_name] = clean_rows
    return clean, errors


def _clean_one(rule, raw, missing_codes, complete, clean, errors, where) -> None:
    if isinstance(raw, str):
        raw = raw.strip()
    if raw in BLANK:
        if complete and rule.required:
            errors[where] = f"{rule.label}: required (enter a value or a missing-data code)"
        return
    if isinstance(raw, str) and raw in missing_codes:
        clean[rule.name] = raw
        return
    try:
        clean[rule.name] = _clean_scalar(rule, raw)
    except ValueError as exc:
        errors[where] = f"{rule.label}: {exc}"
