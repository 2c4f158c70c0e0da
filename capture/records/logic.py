"""Branching logic and calculated fields applied to a record's values: the server's word.

The browser runs the same ASTs as the user types (static/records/entry.js); on save the
server evaluates them again on the cleaned values and its result is what is stored:

- a calculated field gets the computed value, whatever was submitted for it, rounded to
  its element's decimal places (whole numbers for integers);
- a field whose branching is false is **hidden, and its value is not kept**: it is removed
  from the record on save. The earlier value stays in the audit trail (old → blank), so it
  is never lost, and the field history shows it. A hidden field is never required, and a
  value that would not validate in a hidden field does not block the save.

Expressions are evaluated once, top to bottom in form order, each seeing the values above
it as already calculated or hidden (the browser does the same, so both agree). Inside a
repeating group an expression sees its own row's values over the form's; outside, a group
field is the list of its values over the rows (`sum([lesion_diameter])`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from capture.definitions.expressions import evaluate_ast, is_blank, to_text, truthy

from .compiled import CompiledForm, FieldRule


def _view(compiled: CompiledForm, values: dict) -> dict:
    view = {k: v for k, v in values.items() if k not in compiled.repeating}
    for group, spec in compiled.repeating.items():
        rows = values.get(group) or []
        for item in spec["items"]:
            view[item["name"]] = [row.get(item["name"], "") for row in rows]
    return view


def calculated_text(rule: FieldRule, result) -> str:
    """A calculation's result as the text to store (and show) for its field."""
    if is_blank(result):
        return ""
    if isinstance(result, bool):
        return "1" if result else "0"
    if isinstance(result, int | float) and rule.datatype in ("integer", "decimal"):
        places = 0 if rule.datatype == "integer" else rule.decimal_places
        if places is not None:
            try:
                exact = Decimal(repr(float(result))).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
            except InvalidOperation:
                return ""
            return to_text(float(exact))
    return to_text(result)


def apply_logic(
    compiled: CompiledForm, values: dict, *, clean_one, events: dict | None, missing_codes: frozenset[str]
) -> set[str]:
    """Set calculated fields and drop hidden ones in `values` (cleaned, changed in place).

    `clean_one(rule, text, where)` cleans a calculated value as a typed one would be, recording
    any error. Returns the hidden fields: item names, or 'group[row].item' inside a group."""
    hidden: set[str] = set()
    view = _view(compiled, values)
    for logic in compiled.logic:
        rule = compiled.rules[logic.name]
        if logic.group is None:
            if logic.calculation is not None:
                result = evaluate_ast(logic.calculation, view, events=events, missing_codes=missing_codes)
                _store(values, rule, calculated_text(rule, result), clean_one, logic.name)
                view[logic.name] = values.get(logic.name, "")
            if logic.branching is not None and not truthy(
                evaluate_ast(logic.branching, view, events=events, missing_codes=missing_codes)
            ):
                hidden.add(logic.name)
                values.pop(logic.name, None)
                view[logic.name] = ""
            continue
        rows = values.get(logic.group) or []
        for index, row in enumerate(rows):
            where = f"{logic.group}[{index + 1}].{logic.name}"
            row_view = {**view, **row}
            if logic.calculation is not None:
                result = evaluate_ast(logic.calculation, row_view, events=events, missing_codes=missing_codes)
                _store(row, rule, calculated_text(rule, result), clean_one, where)
                row_view[logic.name] = row.get(logic.name, "")
            if logic.branching is not None and not truthy(
                evaluate_ast(logic.branching, row_view, events=events, missing_codes=missing_codes)
            ):
                hidden.add(where)
                row.pop(logic.name, None)
        view[logic.name] = [row.get(logic.name, "") for row in rows]
    return hidden


def _store(target: dict, rule: FieldRule, text: str, clean_one, where: str) -> None:
    target.pop(rule.name, None)
    if text != "":
        clean_one(rule, text, target, where)
