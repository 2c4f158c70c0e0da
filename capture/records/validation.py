"""Validate and normalise a form's values against its items' value domains.

Used by data entry, imports and the API alike, so one rule holds everywhere.
Values are stored as JSON: text as strings, integers as ints, decimals as
floats, dates as ISO strings, booleans as "1"/"0" (REDCap's yes/no), a
checkbox as a sorted list of codes, a repeating group as a list of row dicts.
A study's missing-data code (e.g. "UNK") is accepted in any field and stored as
that code, distinct from a blank.

Calculated fields and branching are applied here too (see logic.py): the value of a
calculated field is the server's, and a field hidden by branching is dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from capture.definitions.expressions import evaluate_ast, truthy
from capture.definitions.models import FormDefinition

from .compiled import FieldRule, compiled
from .logic import apply_logic

BLANK: tuple = ("", None, [])
# What a file field stores: capture.files.models.StoredFile.reference.
FILE_REFERENCE = re.compile(r"file:[0-9a-f]{32}")

__all__ = ["BLANK", "FieldRule", "clean_record", "clean_values", "rules_for"]


def rules_for(form: FormDefinition) -> dict[str, FieldRule]:
    """Every item of the form as a FieldRule, by item name (compiled once per form version)."""
    return compiled(form).rules


def _clean_scalar(rule: FieldRule, raw):
    if isinstance(raw, str):
        raw = raw.strip()
    if rule.multiple:
        return _clean_checkbox(rule, raw)
    if rule.codes:
        code = str(raw)
        if code not in rule.codes:
            raise ValueError(f"{code!r} is not one of the choices ({', '.join(rule.codes)})")
        return code
    clean = _BY_DATATYPE.get(rule.datatype)
    return clean(rule, raw) if clean is not None else str(raw)


def _clean_checkbox(rule: FieldRule, raw) -> list[str]:
    values = raw if isinstance(raw, list) else [v for v in str(raw).split(",") if v.strip()]
    values = sorted({str(v).strip() for v in values})
    unknown = [v for v in values if v not in rule.codes]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not one of the choices")
    return values


def _clean_text(rule: FieldRule, raw) -> str:
    text = str(raw)
    if rule.max_length and len(text) > rule.max_length:
        raise ValueError(f"is {len(text)} characters long; at most {rule.max_length} are allowed")
    return text


def _clean_integer(rule: FieldRule, raw) -> int:
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a whole number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{raw!r} is not a whole number")
    _check_range(rule, number)
    return int(number)


def _clean_decimal(rule: FieldRule, raw) -> float:
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


# How a date is typed in each display format (REDCap's date_ymd, date_dmy, date_mdy).
DATE_HINTS = {"ymd": "YYYY-MM-DD", "dmy": "DD-MM-YYYY", "mdy": "MM-DD-YYYY"}
_DAY_FIRST = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:[ T](.+))?$")


def iso_from_format(text: str, date_format: str) -> str:
    """A date (or date-time) typed as D-M-Y or M-D-Y, as an ISO text; anything else unchanged.
    ISO input is always understood too: the year comes first there, so the two cannot be confused."""
    found = _DAY_FIRST.match(text.strip()) if date_format in ("dmy", "mdy") else None
    if found is None:
        return text
    first, second, year, rest = found.groups()
    day, month = (first, second) if date_format == "dmy" else (second, first)
    iso = f"{year}-{int(month):02d}-{int(day):02d}"
    return f"{iso} {rest}" if rest else iso


def _clean_date(rule: FieldRule, raw) -> str:
    try:
        value = dt.date.fromisoformat(iso_from_format(str(raw), rule.date_format))
    except ValueError:
        hint = DATE_HINTS.get(rule.date_format, "YYYY-MM-DD")
        raise ValueError(f"{raw!r} is not a date; type it as {hint} or pick it") from None
    if rule.min_value and value.isoformat() < rule.min_value:
        raise ValueError(f"is before {rule.min_value}")
    if rule.max_value and value.isoformat() > rule.max_value:
        raise ValueError(f"is after {rule.max_value}")
    return value.isoformat()


def _clean_datetime(rule: FieldRule, raw) -> str:
    try:
        value = dt.datetime.fromisoformat(iso_from_format(str(raw), rule.date_format))
    except ValueError:
        hint = DATE_HINTS.get(rule.date_format, "YYYY-MM-DD")
        raise ValueError(f"{raw!r} is not a date and time ({hint} HH:MM)") from None
    return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")


def _clean_time(rule: FieldRule, raw) -> str:
    try:
        value = dt.time.fromisoformat(str(raw))
    except ValueError:
        raise ValueError(f"{raw!r} is not a time (HH:MM)") from None
    return value.isoformat(timespec="minutes")


def _clean_boolean(rule: FieldRule, raw) -> str:
    text = str(raw).lower()
    if text in ("1", "true", "yes"):
        return "1"
    if text in ("0", "false", "no"):
        return "0"
    raise ValueError(f"{raw!r} is not yes or no")


def _clean_file(rule: FieldRule, raw) -> str:
    # A file field holds the reference of a stored file (capture/files), put there by an upload;
    # a name typed or imported as text ("x.png") is not a file, and REDCap refuses it too.
    text = str(raw)
    if not FILE_REFERENCE.fullmatch(text):
        raise ValueError(
            f"{text!r} is not an uploaded file: a file field takes an upload (the entry page, or the "
            "REDCap API's content=file), not text"
        )
    return text


_BY_DATATYPE = {
    "text": _clean_text,
    "integer": _clean_integer,
    "decimal": _clean_decimal,
    "date": _clean_date,
    "datetime": _clean_datetime,
    "time": _clean_time,
    "boolean": _clean_boolean,
    "file": _clean_file,
}


def _check_range(rule: FieldRule, number: Decimal) -> None:
    if rule.min_value and number < Decimal(rule.min_value):
        raise ValueError(f"is below the minimum {rule.min_value}")
    if rule.max_value and number > Decimal(rule.max_value):
        raise ValueError(f"is above the maximum {rule.max_value}")


def clean_values(
    form: FormDefinition,
    values: dict,
    *,
    missing_codes: set[str],
    complete: bool,
    events: dict | None = None,
    compiled_form=None,
) -> tuple[dict, dict[str, str]]:
    """Return (clean values, errors by item name). Required items are enforced when
    the record is being marked complete; an incomplete record may have blanks."""
    clean, errors, _hidden = clean_record(
        form,
        values,
        missing_codes=missing_codes,
        complete=complete,
        events=events,
        compiled_form=compiled_form,
    )
    return clean, errors


def clean_record(
    form: FormDefinition,
    values: dict,
    *,
    missing_codes,
    complete: bool,
    events: dict | None = None,
    compiled_form=None,
    clean_one=None,
    cleaned: tuple[dict, dict[str, str]] | None = None,
) -> tuple[dict, dict[str, str], set[str]]:
    """`clean_values`, also returning the fields hidden by branching (whose values were dropped).

    The one validator of a record, for entry, imports and both APIs. Two hooks let a bulk caller
    remember outcomes (records.bulk.FormValidator) without repeating any step here:
    - `clean_one`, with `_clean_one`'s signature, cleans each field outside a repeating group (a
      pure function of the field, the value and the missing-data codes, so it may be remembered);
    - `cleaned`, (clean values, errors) of those fields when the caller has cleaned them already
      (the spreadsheet import, once per distinct cell); `values` then has no repeating group."""
    c = compiled_form or compiled(form)
    missing = frozenset(missing_codes)
    errors: dict[str, str] = {
        key: f"{key!r} is not an item of form {form.ref}"
        for key in values
        if key not in c.rules and key not in c.repeating
    }
    if cleaned is not None:
        clean, field_errors = cleaned
        errors.update(field_errors)
    else:
        clean = {}
        _clean_fields(c, values, missing, clean, errors, clean_one or _clean_one)
        _clean_groups(c, values, missing, clean, errors)
    hidden: set[str] = set()
    if c.logic:

        def clean_calculated(rule, text, target, where):
            _clean_one(rule, text, missing, False, target, errors, where)
            if where in errors:
                errors[where] = errors[where].replace(f"{rule.label}: ", f"{rule.label} (calculated): ", 1)

        hidden = apply_logic(c, clean, clean_one=clean_calculated, events=events, missing_codes=missing)
        for where in list(errors):
            if where in hidden:
                del errors[where]  # a hidden field's value is dropped, so its error does not matter
    if c.checks:
        _check_rules(c, clean, hidden, missing, errors)
    if complete:
        _require(c, clean, hidden, errors)
    return clean, errors, hidden


def _check_rules(c, clean: dict, hidden: set[str], missing: frozenset[str], errors: dict[str, str]) -> None:
    """The form's rules across fields (compiled.Check) on the clean values: a rule that is false
    puts its message at its field. One that reads a blank, a missing-data code, a hidden field or
    a field with an error of its own is not checked (it cannot be decided)."""
    for check in c.checks:
        if check.field in errors or check.field in hidden:
            continue
        undecided = any(
            name in hidden or name in errors or clean.get(name) in BLANK or _is_code(clean.get(name), missing)
            for name in check.reads
        )
        if undecided:
            continue
        if not truthy(evaluate_ast(check.ast, clean, missing_codes=missing)):
            label = c.rules[check.field].label if check.field in c.rules else check.field
            errors[check.field] = f"{label}: {check.message}"


def _shape(c) -> tuple[dict[str, FieldRule], frozenset[str]]:
    """(the fields cleaned one by one: neither in a repeating group nor calculated, the calculated
    fields), worked out once per compiled form."""
    shape = c.extras.get("validation")
    if shape is None:
        calculated = frozenset(logic.name for logic in c.logic if logic.calculation is not None)
        grouped = c.grouped
        single = {n: r for n, r in c.rules.items() if n not in grouped and n not in calculated}
        shape = c.extras["validation"] = (single, calculated)
    return shape


def _clean_fields(c, values: dict, missing, clean: dict, errors: dict[str, str], clean_one) -> None:
    # A calculated field's submitted value is ignored: the server computes it.
    for name, rule in _shape(c)[0].items():
        raw = values.get(name)
        if raw is not None:
            clean_one(rule, raw, missing, False, clean, errors, name)


def _clean_groups(c, values: dict, missing, clean: dict, errors: dict[str, str]) -> None:
    calculated = _shape(c)[1]
    for group_name, group in c.repeating.items():
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
                if item["name"] in calculated:
                    continue
                _clean_one(
                    c.rules[item["name"]],
                    row.get(item["name"]),
                    missing,
                    False,
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


def _require(c, clean: dict, hidden: set[str], errors: dict[str, str]) -> None:
    grouped = c.grouped
    for name, rule in c.rules.items():
        if not rule.required or name in hidden or name in errors:
            continue
        group = grouped.get(name)
        if group is None:
            if clean.get(name) in BLANK:
                errors[name] = f"{rule.label}: required (enter a value or a missing-data code)"
            continue
        for index, row in enumerate(clean.get(group) or []):
            where = f"{group}[{index + 1}].{name}"
            if where not in hidden and where not in errors and row.get(name) in BLANK:
                errors[where] = f"{rule.label}: required (enter a value or a missing-data code)"


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


def _is_code(value, missing: frozenset[str]) -> bool:
    return isinstance(value, str) and value in missing
