"""A form version compiled once: its field rules, its expressions as ASTs, its elements.

Data entry, validation and the page skeleton all start from this, so a form version's
definition is read from the database and parsed once per process, not once per request.
The cache key carries the form's content hash and its elements' last load time, because a
version without records may still be reloaded in place (docs/decisions.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from django.db.models import Count, Max, OuterRef, Subquery

from capture.definitions.expressions import ExpressionError, events_used, fields_used, parse
from capture.definitions.models import DataElement, FormDefinition


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
    # The order people type and read a date or date-time in (REDCap's date_dmy, date_mdy):
    # "ymd", "dmy" or "mdy". Values are stored as ISO whatever it is.
    date_format: str = "ymd"


@dataclass(frozen=True)
class Logic:
    """One item's expressions, as ASTs. `group` is the repeating group the item sits in."""

    name: str
    group: str | None
    branching: dict | None
    calculation: dict | None


@dataclass(frozen=True)
class Check:
    """A form rule (definitions.schema.FormRule): `ast` must be true, else `message` at `field`."""

    ast: dict
    field: str
    message: str
    reads: frozenset[str]  # the fields it reads: a blank, hidden or missing one skips it


@dataclass
class CompiledForm:
    form_id: int
    ref: str
    rules: dict[str, FieldRule]
    elements: dict[str, DataElement]  # by element ref
    items: list[dict]  # form.items(), flattened
    repeating: dict[str, dict]  # repeating groups by name
    logic: list[Logic]  # in form order
    events_read: frozenset[str]  # events named as [event][field]
    checks: list[Check] = field(default_factory=list)  # form rules, in definition order
    extras: dict = field(default_factory=dict)  # per-consumer caches (the page skeleton)

    @property
    def grouped(self) -> dict[str, str]:
        return {item["name"]: g for g, spec in self.repeating.items() for item in spec["items"]}


_cache: dict[tuple, CompiledForm] = {}
_lock = threading.Lock()


def stamp_annotations(form_field: str) -> dict:
    """Annotations that read the elements' stamp of the form named by `form_field` in the query
    that loads it; `remember_stamp` then spares `compiled` a query of its own."""
    elements = DataElement.objects.filter(forms=OuterRef(form_field)).order_by().values("forms")
    return {
        "elements_loaded_at": Subquery(elements.annotate(v=Max("loaded_at")).values("v")),
        "elements_count": Subquery(elements.annotate(v=Count("pk")).values("v")),
    }


def remember_stamp(form: FormDefinition, loaded_at, count) -> None:
    # A form without elements has no group to count: the aggregate's 0.
    form.__dict__["_compiled_key"] = (form.pk, form.content_hash, loaded_at, count or 0)


def _key(form: FormDefinition) -> tuple:
    # Read once per FormDefinition instance: the instance is a snapshot of its row read at one
    # moment, and its elements' stamp is taken with it (a request reads the form afresh).
    key = form.__dict__.get("_compiled_key")
    if key is None:
        stamp = DataElement.objects.filter(forms=form).aggregate(last=Max("loaded_at"), n=Count("pk"))
        key = form.__dict__["_compiled_key"] = (form.pk, form.content_hash, stamp["last"], stamp["n"])
    return key


def compiled(form: FormDefinition) -> CompiledForm:
    key = _key(form)
    found = _cache.get(key)
    if found is None:
        found = _compile(form)
        with _lock:
            # Old versions of the same form are dropped; a process keeps one entry per form.
            for old in [k for k in _cache if k[0] == form.pk]:
                _cache.pop(old, None)
            _cache[key] = found
    return found


def _parse(expression: str | None, form: FormDefinition, name: str, what: str) -> dict | None:
    if not expression:
        return None
    try:
        return parse(expression)
    except ExpressionError as error:
        # A definition that slipped past the loader must not take the page down with a 500.
        raise ExpressionError(
            f"form {form.ref}, item {name!r}, {what}: {error.message}", error.position, expression
        ) from None


def _compile(form: FormDefinition) -> CompiledForm:
    items = form.items()
    elements = {
        e.ref: e for e in DataElement.objects.filter(forms=form).prefetch_related("permissible_values")
    }
    rules = {}
    logic = []
    events: set[str] = set()
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
            date_format=element.spec.get("display_format") or "ymd",
        )
        branching = _parse(item.get("branching"), form, item["name"], "branching")
        calculation = _parse(item.get("calculation"), form, item["name"], "calculation")
        for expression in (item.get("branching"), item.get("calculation")):
            if expression:
                events |= events_used(expression)
        if branching or calculation:
            logic.append(
                Logic(item["name"], item["group"] if item["repeating"] else None, branching, calculation)
            )
    repeating = {
        entry["group"]: entry
        for section in form.spec["sections"]
        for entry in section["items"]
        if "group" in entry and entry.get("repeating")
    }
    return CompiledForm(
        form_id=form.pk,
        ref=form.ref,
        rules=rules,
        elements=elements,
        items=items,
        repeating=repeating,
        logic=logic,
        events_read=frozenset(events),
        checks=_checks(form),
    )


def _checks(form: FormDefinition) -> list[Check]:
    checks = []
    for index, rule in enumerate(form.spec.get("rules", [])):
        ast = _parse(rule["check"], form, rule["field"], f"rule {index + 1}")
        assert ast is not None  # the schema requires a check
        checks.append(Check(ast, rule["field"], rule["message"], frozenset(fields_used(rule["check"]))))
    return checks
