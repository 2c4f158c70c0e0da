"""The data quality checks: REDCap's built-in rules and custom rules, over stored records.

Pure functions of a compiled form, a record's stored values and the subject's other events;
no database access (checks.py reads the records and writes what is found). Each form's checks
are prepared once (`FormChecks`), so a run over many records does only the per-value work.

Built-in kinds (KINDS):
- required:     a required field, shown by its branching, is blank;
- range:        a number or date outside its element's minimum / maximum;
- code:         a value that is not one of the field's choices (nor a missing-data code);
- hidden:       a field hidden by its branching holds a value;
- calculation:  a calculated field's stored value is not what its calculation gives now;
- missing_code: a missing-data code in a field whose annotation says @NOMISSING.
A custom rule (`rule:<name>`) is an expression of the expression language that is true where
the data are wrong (`[visit_date] < [consent_date]`); it sees the record's values over the
other forms' values at the same event, and [event][field] reads other events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from capture.definitions.expressions import ExpressionError, evaluate_ast, parse, to_text, truthy
from capture.records.compiled import CompiledForm, FieldRule
from capture.records.logic import apply_logic

KINDS = {
    "required": "Blank required field",
    "range": "Value outside its range",
    "code": "Invalid code",
    "hidden": "Hidden field holds a value",
    "calculation": "Calculation disagrees with the stored value",
    "missing_code": "Missing-data code where not allowed",
}
BLANK = ("", None, [])
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Finding:
    rule: str  # a KINDS key, or "rule:<name>"
    field: str  # an item name, or "group[row].item"
    message: str


@dataclass(frozen=True)
class CustomRule:
    name: str
    title: str
    ast: dict
    field: str

    @classmethod
    def of(cls, name: str, title: str, expression: str, field: str = "") -> CustomRule:
        """A rule from its expression; ExpressionError names what does not parse."""
        return cls(name, title, parse(expression), field or "")


def _bound(rule: FieldRule, text: str):
    """A minimum or maximum as the stored values compare: a float, an ISO date text, or None."""
    if not text:
        return None
    if rule.datatype in ("integer", "decimal"):
        try:
            return float(text)
        except ValueError:
            return None
    return text if rule.datatype in ("date", "datetime") and _ISO.match(text) else None


class FormChecks:
    """Every check of one form version, prepared once: `run(data, events)` lists the findings."""

    def __init__(self, c: CompiledForm, custom: Iterable[CustomRule], missing_codes: Iterable[str]):
        self.c = c
        self.missing = frozenset(missing_codes)
        self.custom = list(custom)
        grouped = c.grouped
        self.calculated = {lg.name for lg in c.logic if lg.calculation is not None}
        top = [r for n, r in c.rules.items() if n not in grouped]
        self.required = [r for r in top if r.required]
        self.ranged = [
            (r, _bound(r, r.min_value), _bound(r, r.max_value))
            for r in c.rules.values()
            if _bound(r, r.min_value) is not None or _bound(r, r.max_value) is not None
        ]
        self.coded = [r for r in c.rules.values() if r.codes]
        no_missing = {i["name"] for i in c.items if "@NOMISSING" in (i.get("annotation") or "").upper()}
        self.no_missing = [r for r in c.rules.values() if r.name in no_missing]
        self.has_logic = any(lg.group is None for lg in c.logic)

    def run(self, data: dict, events: dict | None = None, same_event: dict | None = None) -> list[Finding]:
        found: list[Finding] = []
        hidden = self._logic(data, events, found) if self.has_logic else set()
        self._required(data, hidden, found)
        for rule, low, high in self.ranged:
            for where, value in self._values(data, rule.name):
                self._range(rule, where, value, low, high, found)
        for rule in self.coded:
            for where, value in self._values(data, rule.name):
                self._code(rule, where, value, found)
        for rule in self.no_missing:
            for where, value in self._values(data, rule.name):
                if isinstance(value, str) and value in self.missing:
                    found.append(Finding("missing_code", where, f"{rule.label}: {value} is not allowed here"))
        if self.custom:
            self._custom(data, events, same_event, found)
        return found

    def _values(self, data: dict, name: str):
        """(where, value) of the item's stored values: one, or one per row of its group."""
        group = self.c.grouped.get(name)
        if group is None:
            value = data.get(name)
            if value not in BLANK:
                yield name, value
            return
        for index, row in enumerate(data.get(group) or ()):
            value = row.get(name) if isinstance(row, dict) else None
            if value not in BLANK:
                yield f"{group}[{index + 1}].{name}", value

    def _logic(self, data: dict, events, found: list[Finding]) -> set[str]:
        """The server's branching and calculations on a copy (records.logic, the one rule):
        a hidden field that holds a value, a calculation whose result differs from the stored."""
        copy = {
            k: ([dict(r) for r in v] if k in self.c.repeating and isinstance(v, list) else v)
            for k, v in data.items()
        }

        def store(rule, text, target, where):
            target[rule.name] = text  # compared as text below; validation is not this check's job

        hidden = apply_logic(self.c, copy, clean_one=store, events=events, missing_codes=self.missing)
        for where in hidden:
            if "[" not in where and data.get(where) not in BLANK:
                label = self.c.rules[where].label
                found.append(Finding("hidden", where, f"{label}: hidden by its branching but holds a value"))
        for name in self.calculated:
            if name in self.c.grouped or name in hidden:
                continue
            stored, now = to_text(data.get(name)), copy.get(name, "")
            if stored != now and not (stored in self.missing and now == ""):
                rule = self.c.rules[name]
                found.append(
                    Finding(
                        "calculation",
                        name,
                        f"{rule.label}: stored {stored or 'blank'}, calculates to {now or 'blank'}",
                    )
                )
        return hidden

    def _required(self, data: dict, hidden: set[str], found: list[Finding]) -> None:
        for rule in self.required:
            if rule.name not in hidden and data.get(rule.name) in BLANK:
                found.append(Finding("required", rule.name, f"{rule.label}: required but blank"))

    def _range(self, rule: FieldRule, where: str, value, low, high, found: list[Finding]) -> None:
        if isinstance(value, str) and value in self.missing:
            return
        if isinstance(low, float) or isinstance(high, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return  # not a number: the code and type checks are the validator's
        elif not isinstance(value, str):
            return
        if low is not None and value < low:
            found.append(
                Finding(
                    "range", where, f"{rule.label}: {to_text(value)} is below the minimum {rule.min_value}"
                )
            )
        elif high is not None and value > high:
            found.append(
                Finding(
                    "range", where, f"{rule.label}: {to_text(value)} is above the maximum {rule.max_value}"
                )
            )

    def _code(self, rule: FieldRule, where: str, value, found: list[Finding]) -> None:
        values = value if isinstance(value, list) else [value]
        wrong = [str(v) for v in values if str(v) not in rule.codes and str(v) not in self.missing]
        if wrong:
            found.append(Finding("code", where, f"{rule.label}: {', '.join(wrong)} is not one of its codes"))

    def _custom(self, data: dict, events, same_event, found: list[Finding]) -> None:
        values = {**same_event, **data} if same_event else data
        for rule in self.custom:
            try:
                result = evaluate_ast(rule.ast, values, events=events, missing_codes=self.missing)
            except (ExpressionError, ZeroDivisionError, TypeError, ValueError):
                continue  # a rule that cannot be evaluated on this record finds nothing here
            if truthy(result):
                found.append(Finding(f"rule:{rule.name}", rule.field, rule.title))
