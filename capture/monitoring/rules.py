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

A finding's message names the field and the rule, never the stored value: the data quality page
is read by roles that see the study de-identified (a monitor), and a value (a real date, an
identifier) must reach them only through the disclosure policy, on the entry page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

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
    "response": "Reader's response disagrees with the computed one",  # response_check.py
}
BLANK: tuple = ("", None, [])
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
        grouped = self.grouped = c.grouped  # a property that builds a dict: read once
        self.calculated = {lg.name for lg in c.logic if lg.calculation is not None}
        top = [r for n, r in c.rules.items() if n not in grouped]
        self.required = [r for r in top if r.required]
        self.ranged = {
            r.name: (_bound(r, r.min_value), _bound(r, r.max_value))
            for r in c.rules.values()
            if _bound(r, r.min_value) is not None or _bound(r, r.max_value) is not None
        }
        self.no_missing = {i["name"] for i in c.items if "@NOMISSING" in (i.get("annotation") or "").upper()}
        # The fields whose stored values are checked one by one (a range, codes or @NOMISSING).
        self.value_checked = [
            r for r in c.rules.values() if r.codes or r.name in self.ranged or r.name in self.no_missing
        ]
        self.has_logic = any(lg.group is None for lg in c.logic)
        # Top-level logic is a function of the fields it reads; logic inside a group reads its rows.
        asts = [a for lg in c.logic for a in (lg.branching, lg.calculation) if a is not None]
        self.logic_memo = _Memo(asts, usable=all(lg.group is None for lg in c.logic))
        self.custom_tests = [_truth(rule.ast, self.missing) for rule in self.custom]

    def run(self, data: dict, events: dict | None = None, same_event: dict | None = None) -> list[Finding]:
        found: list[Finding] = []
        hidden = self._logic(data, events, found) if self.has_logic else set()
        self._required(data, hidden, found)
        for rule, where, value in self._stored(data, self.value_checked):
            self._value(rule, where, value, found)
        if self.custom:
            self._custom(data, events, same_event, found)
        return found

    def _stored(self, data: dict, rules: list[FieldRule]):
        """(rule, where, value) of each stored, non-blank value of `rules`."""
        grouped = self.grouped
        for rule in rules:
            if rule.name not in grouped:
                value = data.get(rule.name)
                if value is not None and value != "" and value != []:
                    yield rule, rule.name, value
            else:
                for where, value in self._values(data, rule.name):
                    yield rule, where, value

    def _value(self, rule: FieldRule, where: str, value, found: list[Finding]) -> None:
        """The range, code and missing-code checks of one stored value."""
        if isinstance(value, str) and value in self.missing:
            if rule.name in self.no_missing:
                found.append(
                    Finding("missing_code", where, f"{rule.label}: a missing-data code is not allowed here")
                )
            return
        if rule.codes:
            if not (isinstance(value, str) and value in rule.codes):  # the common case, at once
                self._code(rule, where, value, found)
            return
        bounds = self.ranged.get(rule.name)
        if bounds is not None:
            self._range(rule, where, value, bounds[0], bounds[1], found)

    def _values(self, data: dict, name: str) -> list[tuple[str, object]]:
        """(where, value) of the item's stored values: one, or one per row of its group."""
        group = self.grouped.get(name)
        if group is None:
            value = data.get(name)
            return [] if value is None or value == "" or value == [] else [(name, value)]
        found = []
        for index, row in enumerate(data.get(group) or ()):
            value = row.get(name) if isinstance(row, dict) else None
            if value not in BLANK:
                found.append((f"{group}[{index + 1}].{name}", value))
        return found

    def _logic(self, data: dict, events, found: list[Finding]) -> AbstractSet[str]:
        """The server's branching and calculations (records.logic, the one rule): a hidden field
        that holds a value, a calculation whose result differs from the stored value."""
        key = self.logic_memo.key(data, events)
        outcome = self.logic_memo.get(key)
        if outcome is None:
            outcome = self.logic_memo.put(key, self._apply_logic(data, events))
        hidden, calculated = outcome
        for where in hidden:
            if "[" not in where and data.get(where) not in BLANK:
                label = self.c.rules[where].label
                found.append(Finding("hidden", where, f"{label}: hidden by its branching but holds a value"))
        for name, now in calculated.items():
            stored = to_text(data.get(name))
            if stored != now and not (stored in self.missing and now == ""):
                label = self.c.rules[name].label
                message = f"{label}: the stored value is not what its calculation gives"
                found.append(Finding("calculation", name, message))
        return hidden

    def _apply_logic(self, data: dict, events) -> tuple[frozenset[str], dict[str, str]]:
        """(hidden fields, calculated text of each shown calculated field) of `data`."""
        copy: dict[str, Any] = {
            k: ([dict(r) for r in v] if k in self.c.repeating and isinstance(v, list) else v)
            for k, v in data.items()
        }

        def store(rule, text, target, where):
            target[rule.name] = text  # compared as text; validation is not this check's job

        hidden = apply_logic(self.c, copy, clean_one=store, events=events, missing_codes=self.missing)
        calculated: dict[str, str] = {
            name: copy.get(name, "")
            for name in self.calculated
            if name not in self.grouped and name not in hidden
        }
        return frozenset(hidden), calculated

    def _required(self, data: dict, hidden: AbstractSet[str], found: list[Finding]) -> None:
        for rule in self.required:
            if rule.name not in hidden and data.get(rule.name) in BLANK:
                found.append(Finding("required", rule.name, f"{rule.label}: required but blank"))

    def _range(self, rule: FieldRule, where: str, value, low, high, found: list[Finding]) -> None:
        if isinstance(low, float) or isinstance(high, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return  # not a number: the code and type checks are the validator's
        elif not isinstance(value, str):
            return
        if low is not None and value < low:
            found.append(Finding("range", where, f"{rule.label}: below the minimum {rule.min_value}"))
        elif high is not None and value > high:
            found.append(Finding("range", where, f"{rule.label}: above the maximum {rule.max_value}"))

    def _code(self, rule: FieldRule, where: str, value, found: list[Finding]) -> None:
        values = value if isinstance(value, list) else [value]
        wrong = [str(v) for v in values if str(v) not in rule.codes and str(v) not in self.missing]
        if wrong:
            found.append(Finding("code", where, f"{rule.label}: not one of its codes"))

    def _custom(self, data: dict, events, same_event, found: list[Finding]) -> None:
        values = {**same_event, **data} if same_event else data
        for rule, test in zip(self.custom, self.custom_tests, strict=True):
            try:
                wrong = test(values, events)
            except (ExpressionError, ZeroDivisionError, TypeError, ValueError):
                continue  # a rule that cannot be evaluated on this record finds nothing here
            if wrong:
                found.append(Finding(f"rule:{rule.name}", rule.field, rule.title))


def _truth(ast: dict, missing: frozenset[str]):
    """`truthy(evaluate_ast(ast, …))` as a function of (values, events): `and`, `or` and `not`
    combined here exactly as the evaluator combines them (expressions._Evaluator._and, …), and
    each other part evaluated by the evaluator, remembered by the values it reads (a part that
    reads one field has as many outcomes as the field has distinct values)."""
    kind = ast["t"]
    if kind in ("and", "or"):
        a, b = _truth(ast["a"], missing), _truth(ast["b"], missing)
        if kind == "and":
            return lambda values, events: a(values, events) and b(values, events)
        return lambda values, events: a(values, events) or b(values, events)
    if kind == "not":
        a = _truth(ast["a"], missing)
        return lambda values, events: not a(values, events)
    memo = _Memo([ast])

    def part(values, events) -> bool:
        key = memo.key(values, events)
        outcome = memo.get(key)
        if outcome is None:
            outcome = memo.put(key, truthy(evaluate_ast(ast, values, events=events, missing_codes=missing)))
        return outcome

    return part


def _reads(ast: dict) -> set[tuple[str | None, str]]:
    """(event or None, field) of every field an expression reads."""
    found = {(ast.get("e"), ast["f"])} if ast["t"] == "field" else set()
    for child in [ast.get("a"), ast.get("b"), *ast.get("args", ())]:
        if child:
            found |= _reads(child)
    return found


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


class _Memo:
    """Outcomes of expressions by the values they read: a pure function of those values, so a
    run over many records evaluates each distinct input once (bounded, like records.bulk's memo)."""

    LIMIT = 50_000

    def __init__(self, asts, *, usable: bool = True):
        reads: set[tuple[str | None, str]] = set()
        for ast in asts:
            reads |= _reads(ast)
        self.reads = sorted(reads, key=lambda pair: (pair[0] or "", pair[1]))
        self.usable = usable
        self.outcomes: dict = {}

    def key(self, values: dict, events):
        if not self.usable:
            return None
        return tuple(
            _frozen(values.get(f) if e is None else (events or {}).get(e, {}).get(f)) for e, f in self.reads
        )

    def get(self, key):
        return None if key is None else self.outcomes.get(key)

    def put(self, key, outcome):
        if key is not None:
            if len(self.outcomes) >= self.LIMIT:
                self.outcomes.clear()
            self.outcomes[key] = outcome
        return outcome
