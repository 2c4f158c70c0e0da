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
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
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
_INF = float("inf")


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


def _window(rule: FieldRule, bounds) -> tuple[float, float]:
    """The numbers a value check passes at once: [low, high] of a numeric range, every number
    where nothing limits them, none where codes are checked (a number is then not a code)."""
    if rule.codes:
        return _INF, -_INF
    low, high = bounds if bounds is not None else (None, None)
    if isinstance(low, float) or isinstance(high, float):
        return (-_INF if low is None else low), (_INF if high is None else high)
    return -_INF, _INF  # no range, or a date range: a number is none of this check's business


class FormChecks:
    """Every check of one form version, prepared once: `run(data, events)` lists the findings.

    A run calls `run` for every record of a study, so the per-record work is kept to reading the
    values: what each field's checks need is looked up here once, a text value found fine is
    remembered per field (its checks depend on nothing else), and expressions are evaluated once
    per distinct input (`_Memo`)."""

    def __init__(self, c: CompiledForm, custom: Iterable[CustomRule], missing_codes: Iterable[str]):
        self.c = c
        self.missing = frozenset(missing_codes)
        self.custom = list(custom)
        grouped = self.grouped = c.grouped  # a property that builds a dict: read once
        self.calculated = [lg.name for lg in c.logic if lg.calculation is not None]  # form order
        self.required = [(r.name, r.label) for n, r in c.rules.items() if n not in grouped and r.required]
        self.ranged = {
            r.name: (_bound(r, r.min_value), _bound(r, r.max_value))
            for r in c.rules.values()
            if _bound(r, r.min_value) is not None or _bound(r, r.max_value) is not None
        }
        self.no_missing = {i["name"] for i in c.items if "@NOMISSING" in (i.get("annotation") or "").upper()}
        # The fields whose stored values are checked one by one (a range, codes or @NOMISSING), in
        # form order: (name, rule, its group or None, text values found fine, the numbers that pass).
        self.value_checked = [
            (r.name, r, grouped.get(r.name), {""}, *_window(r, self.ranged.get(r.name)))
            for r in c.rules.values()
            if r.codes or r.name in self.ranged or r.name in self.no_missing
        ]
        self.has_logic = any(lg.group is None for lg in c.logic)
        # Top-level logic is a function of the fields it reads (not of a group's rows: a top-level
        # `sum([diameter])` reads every row); logic inside a group reads its rows.
        asts = [a for lg in c.logic for a in (lg.branching, lg.calculation) if a is not None]
        self.logic_memo = _Memo(
            asts,
            usable=all(lg.group is None for lg in c.logic)
            and not any(f in grouped for _, f in _reads_all(asts)),
        )
        self.custom_tests = [(rule, _truth(rule.ast, self.missing)) for rule in self.custom]

    def run(self, data: dict, events: dict | None = None, same_event: dict | None = None) -> list[Finding]:
        found: list[Finding] = []
        hidden = self._logic(data, events, found) if self.has_logic else frozenset()
        if self.required:
            self._required(data, hidden, found)
        self._stored_values(data, found)
        if self.custom_tests:
            self._custom(data, events, same_event, found)
        return found

    def _stored_values(self, data: dict, found: list[Finding]) -> None:
        """The range, code and missing-code checks of each stored, non-blank value: a text (or a
        list of texts) seen fine before, or a number inside the field's window, passes at once."""
        for name, rule, group, fine, low, high in self.value_checked:
            if group is not None:
                for where, value in self._values(data, name):
                    self._value(rule, where, value, found)
                continue
            value = data.get(name)
            if value is None:
                continue
            kind = value.__class__
            if kind is str:
                if value in fine:
                    continue
            elif kind is int or kind is float:
                if low <= value <= high:
                    continue
            elif kind is list and (not value or _known(fine, value)):
                continue
            before = len(found)
            self._value(rule, name, value, found)
            if len(found) == before:
                _remember(fine, value)

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
        memo = self.logic_memo
        outcome = memo.get(data, None, events)
        if outcome is None:
            outcome = memo.put(self._apply_logic(data, events))
        hidden, hidden_here, calculated = outcome
        for name, label in hidden_here:
            if data.get(name) not in BLANK:
                found.append(Finding("hidden", name, f"{label}: hidden by its branching but holds a value"))
        for name, now, label in calculated:
            stored = to_text(data.get(name))
            if stored != now and not (stored in self.missing and now == ""):
                found.append(
                    Finding(
                        "calculation", name, f"{label}: the stored value is not what its calculation gives"
                    )
                )
        return hidden

    def _apply_logic(self, data: dict, events) -> tuple:
        """(hidden fields, (name, label) of the hidden top-level ones, (name, calculated text,
        label) of each shown top-level calculated field) of `data`."""
        copy: dict[str, Any] = {
            k: ([dict(r) for r in v] if k in self.c.repeating and isinstance(v, list) else v)
            for k, v in data.items()
        }

        def store(rule, text, target, where):
            target[rule.name] = text  # compared as text; validation is not this check's job

        hidden = apply_logic(self.c, copy, clean_one=store, events=events, missing_codes=self.missing)
        rules = self.c.rules
        calculated = tuple(
            (name, copy.get(name, ""), rules[name].label)
            for name in self.calculated
            if name not in self.grouped and name not in hidden
        )
        hidden_here = tuple((name, rule.label) for name, rule in rules.items() if name in hidden)
        return frozenset(hidden), hidden_here, calculated

    def _required(self, data: dict, hidden: AbstractSet[str], found: list[Finding]) -> None:
        for name, label in self.required:
            if data.get(name) in BLANK and name not in hidden:
                found.append(Finding("required", name, f"{label}: required but blank"))

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
        for rule, test in self.custom_tests:
            try:
                wrong = test(data, same_event, events)
            except (ExpressionError, ZeroDivisionError, TypeError, ValueError):
                continue  # a rule that cannot be evaluated on this record finds nothing here
            if wrong:
                found.append(Finding(f"rule:{rule.name}", rule.field, rule.title))


def _known(fine: set, values: list) -> bool:
    try:
        return tuple(values) in fine
    except TypeError:  # a list holding dicts: checked in full
        return False


def _remember(fine: set, value) -> None:
    """Keep a value found fine: a text, or a list of texts as a tuple (only texts: 1 and True are
    equal in a set, and a code check tells them apart)."""
    if value.__class__ is list:
        if not all(v.__class__ is str for v in value):
            return
        value = tuple(value)
    elif value.__class__ is not str:
        return
    if len(fine) >= _Memo.LIMIT:
        fine.clear()
        fine.add("")  # a blank is never checked
    fine.add(value)


def _truth(ast: dict, missing: frozenset[str]):
    """`truthy(evaluate_ast(ast, …))` as a function of (the record's values, its event's other
    values, other events): a custom rule sees the record's values over the other forms' of its
    event. `and`, `or` and `not` are combined here exactly as the evaluator combines them
    (expressions._Evaluator._and, …); each other part is evaluated by the evaluator, once per
    distinct input (a part that reads one field has as many outcomes as the field has values)."""
    kind = ast["t"]
    if kind in ("and", "or", "not") and len(_reads(ast)) <= 1:
        return _part(ast, missing)  # as many outcomes as its parts have: remembered whole
    if kind in ("and", "or"):
        a, b = _truth(ast["a"], missing), _truth(ast["b"], missing)
        if kind == "and":
            return lambda data, same, events: a(data, same, events) and b(data, same, events)
        return lambda data, same, events: a(data, same, events) or b(data, same, events)
    if kind == "not":
        a = _truth(ast["a"], missing)
        return lambda data, same, events: not a(data, same, events)
    return _part(ast, missing)


def _part(ast: dict, missing: frozenset[str]):
    memo = _Memo([ast])
    merges = any(event is None for event, _ in memo.reads)  # reads this event's values

    def part(data: dict, same: dict | None, events) -> bool:
        outcome = memo.get(data, same, events)
        if outcome is None:
            values = {**same, **data} if same and merges else data  # merged only when evaluated
            outcome = memo.put(truthy(evaluate_ast(ast, values, events=events, missing_codes=missing)))
        return outcome

    return part


def _reads(ast: dict) -> set[tuple[str | None, str]]:
    """(event or None, field) of every field an expression reads."""
    found = {(ast.get("e"), ast["f"])} if ast["t"] == "field" else set()
    for child in [ast.get("a"), ast.get("b"), *ast.get("args", ())]:
        if child:
            found |= _reads(child)
    return found


def _reads_all(asts) -> set[tuple[str | None, str]]:
    return set().union(*(_reads(ast) for ast in asts))


def _frozen(value):
    """A stored value as part of a memo key: hashable, and of its type (1, 1.0 and True are equal
    keys in a dict, but `[x(1)]` tells them apart)."""
    kind = value.__class__
    if kind is str or value is None:
        return value
    if kind is list:
        return tuple(_frozen(v) for v in value)
    return kind, value


_NOTHING: Mapping = MappingProxyType({})


class _Memo:
    """Outcomes of expressions by the values they read: a pure function of those values, so a
    run over many records evaluates each distinct input once (bounded, like records.bulk's memo).
    `get` gives the outcome remembered for a record's values, or None; `put` the outcome then.

    A field is read as the evaluator reads it: from the record, else from its event's other
    forms (`same`, custom rules only), or from another event ([event][field]). The common case,
    one field, is keyed by its value in a table per type, with no key to build."""

    LIMIT = 50_000

    def __init__(self, asts, *, usable: bool = True):
        self.reads = sorted(_reads_all(asts), key=lambda pair: (pair[0] or "", pair[1]))
        self.usable = usable
        self.single = self.reads[0] if usable and len(self.reads) == 1 else None
        self.own = self.single[1] if self.single is not None and self.single[0] is None else None
        self.by_type: dict[type, dict] = {}  # one field read: its value's type, its value
        self.outcomes: dict = {}  # by the tuple of the values read
        self._pending: tuple[dict, Any] | None = None  # where `put` keeps the outcome

    def get(self, data: dict, same: dict | None, events):
        name = self.own
        if name is not None:  # inline: the run's most frequent call
            value = data[name] if name in data else same.get(name) if same else None
        elif self.single is not None:
            value = _read(data, same, events, *self.single)
        elif self.usable:
            return self._lookup(
                self.outcomes, tuple([_frozen(_read(data, same, events, *r)) for r in self.reads])
            )
        else:
            self._pending = None
            return None
        kind = value.__class__
        if kind is list:
            return self._lookup(self.outcomes, _frozen(value))
        table = self.by_type.get(kind)
        if table is None:
            table = self.by_type[kind] = {}
        return self._lookup(table, value)

    def _lookup(self, table: dict, key):
        try:
            outcome = table.get(key)
        except TypeError:  # unhashable: a value holding a group's rows
            self._pending = None
            return None
        self._pending = (table, key) if outcome is None else None
        return outcome

    def put(self, outcome):
        pending, self._pending = self._pending, None
        if pending is not None:
            table, key = pending
            if len(table) >= self.LIMIT:
                table.clear()
            table[key] = outcome
        return outcome


def _read(data: dict, same: dict | None, events, event: str | None, name: str):
    if event is None:
        return data[name] if name in data else same.get(name) if same else None
    return (events or _NOTHING).get(event, _NOTHING).get(name)
