"""Column conversion: stored values as the export's cells.

`convert` states the rules for one stored value (see capture.records.validation for how
values are stored); `converter` compiles them per column, and `_fast_converter` converts a
whole column at C speed when it holds only clean values. `Cells` holds what the rules need
(the study's missing-data codes, the export's de-identification) and makes the per-column
functions the layouts call; `RecordColumns` fills the wide layout's columns of one record.
tests/exports/test_output_stable.py pins the result.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterator, Sequence
from operator import itemgetter

from capture.files.exports import FileNames
from capture.studies.models import Subject

from .columns import Column, Missing
from .deidentify import Deidentifier


class Cells:
    """The cell functions of one export."""

    def __init__(self, missing_codes: frozenset, deid: Deidentifier) -> None:
        self.missing_codes = missing_codes
        self.deid = deid
        self._plans: dict[int, tuple] = {}

    def row(self, columns, subject, recs, event, instance, extra, group_row=None) -> list:
        """One row of `columns` (long, tidy and imaging tables)."""
        plan = self._plans.get(id(columns))
        if plan is None:
            # Compiled once per table: a getter per column, so a row costs one call per cell.
            plan = self._plans[id(columns)] = (columns, [self.getter(col) for col in columns])
        return [get(subject, recs, event, instance, extra, group_row) for get in plan[1]]

    def getter(self, col: Column):
        """(subject, records, event, instance, imaging extra, group row) -> the column's cell."""
        source, key = col.source, col.key
        if source == "subject":
            value = self.subject_value
            return lambda s, r, e, i, x, g: value(key, s)
        if source == "context":
            return _context_getter(key)
        if source == "imaging":
            return lambda s, r, e, i, x, g: x.get(key) if x else None
        fixed = (col.event_id, col.form, col.instance) if col.event_id else None
        form = col.form
        if source == "status":
            if fixed:
                return lambda s, r, e, i, x, g: rec[0] if (rec := r.get(fixed)) else None
            return lambda s, r, e, i, x, g: rec[0] if (rec := r.get((e.pk, form, i))) else None
        value_of = self._value_of(col)
        if fixed:
            return lambda s, r, e, i, x, g: value_of(rec[1], s) if (rec := r.get(fixed)) else None
        return lambda s, r, e, i, x, g: value_of(rec[1], s) if (rec := r.get((e.pk, form, i))) else None

    def _value_of(self, col: Column):
        """(record data, subject) -> the cell of a record column."""
        conv = converter(col, self.missing_codes, self.deid)
        name, group, row = col.item.name, col.item.group, col.row  # type: ignore[union-attr]  # record columns have an item
        if row is None:
            return lambda data, s: conv(data.get(name), s)
        index = row - 1

        def value_of(data, s):
            rows = data.get(group)
            if not rows or index >= len(rows):
                return None
            return conv(rows[index].get(name), s)

        return value_of

    def subject_value(self, key, subject: Subject):
        deid = self.deid
        if key == "subject_id":
            return deid.subject_key(subject.subject_id)
        if key == "site":
            return subject.site.code
        if key == "kind":
            return subject.kind
        if key == "arm":
            return subject.arm.name
        if key == "derived_from":
            return deid.subject_key(subject.derived_from.subject_id) if subject.derived_from_id else None  # type: ignore[union-attr]  # derived_from_id is set
        if key == "model_type":
            return subject.model_type or None
        if key == "enrollment_date":
            return deid.date(subject.enrollment_date, subject)
        raise KeyError(key)

    def subject_column(self, col: Column, chunk: list[Subject], extra: dict) -> list:
        """The cells of a subject or imaging column for a chunk of subjects."""
        if col.source == "imaging":
            key = col.key
            return [x.get(key) if (x := extra.get(s.pk)) else None for s in chunk]
        get = self.getter(col)
        return [get(s, None, None, None, extra.get(s.pk), None) for s in chunk]

    def column_maker(self, col: Column):
        """(record data list, status list, subject list) -> the column's cells for those records,
        for the columns `RecordColumns` does not convert itself (group rows, checkbox options,
        date-times, days since enrolment)."""
        if col.source == "status":
            return lambda datas, statuses, subjects: statuses
        conv = converter(col, self.missing_codes, self.deid)
        name, group, row = col.item.name, col.item.group, col.row  # type: ignore[union-attr]  # record columns have an item
        if row is None:
            return lambda datas, statuses, subjects: [
                conv(d.get(name), s) for d, s in zip(datas, subjects, strict=True)
            ]
        index = row - 1
        return lambda datas, statuses, subjects: [
            conv(rows[index].get(name), s) if (rows := d.get(group)) and index < len(rows) else None
            for d, s in zip(datas, subjects, strict=True)
        ]


def _context_getter(key: str):
    if key == "event":
        return lambda s, r, e, i, x, g: e.name
    if key == "event_day":
        return lambda s, r, e, i, x, g: e.day
    if key == "instance":
        return lambda s, r, e, i, x, g: i
    return lambda s, r, e, i, x, g: g


_ONLY_INT = frozenset({int})
_ONLY_FLOAT = frozenset({float})
_ONLY_STR = frozenset({str})
_YES_NO = {"1": 1, "0": 0}


class RecordColumns:
    """The columns of a wide table that one record (event, form, instance) fills.

    `fill` converts them a column at a time. Plain item columns are read from the records with
    one itemgetter call per record and converted at C speed (map, set checks) when a column
    holds only clean values — the usual case; any blank, missing-data code or unusual stored
    type sends that column through the cell-by-cell rules of `converter`, which define the
    result either way (tests/exports/test_output_stable.py pins it)."""

    def __init__(self, cells: Cells, columns: list[tuple[int, Column]]) -> None:
        self.numbers = [n for n, _ in columns]
        self.status = [n for n, col in columns if col.source == "status"]
        plain, self.others = [], []
        for n, col in columns:
            if col.source != "record":
                continue
            fast = _fast_converter(col, cells.missing_codes, cells.deid) if col.row is None else None
            if fast is None:
                self.others.append((n, cells.column_maker(col)))
            else:
                plain.append((n, col.item.name, fast))  # type: ignore[union-attr]  # record columns have an item
        self.plain = [(n, fast) for n, _, fast in plain]
        self.names = tuple(name for _, name, _ in plain)
        self.pick = itemgetter(*self.names) if len(self.names) > 1 else None

    def fill(
        self, datas: list[dict], statuses: list, subjects: list, shared: dict
    ) -> Iterator[tuple[int, Sequence]]:
        """(column number, cells) for each column; `shared` holds what the converters compute
        once for these subjects (their date shifts)."""
        for n in self.status:
            yield n, statuses
        if self.plain:
            for (n, fast), values in zip(self.plain, self._values(datas), strict=True):
                yield n, fast(values, subjects, shared)
        for n, make in self.others:
            yield n, make(datas, statuses, subjects)

    def _values(self, datas: list[dict]) -> list[Sequence]:
        """The raw values of the plain columns, a sequence per column."""
        names = self.names
        if self.pick is None:
            return [[d.get(names[0]) for d in datas]]
        try:
            rows = list(map(self.pick, datas))
        except KeyError:  # an item a record does not hold (added to the form later, or hidden)
            rows = [tuple(map(d.get, names)) for d in datas]
        return list(zip(*rows, strict=True))


def _fast_converter(col: Column, missing_codes: frozenset, deid: Deidentifier):
    """(raw values, their subjects, shared) -> cells, or None where only `converter` applies."""
    conv = converter(col, missing_codes, deid)
    special = missing_codes | {""}  # values the cell-by-cell rules must see
    datatype = col.datatype
    if _is_file(col):
        return lambda values, subjects, shared: [conv(v, None) for v in conv.prefetch(values)]

    def one(v):
        return conv(v, None)

    if datatype == "integer":
        return lambda values, subjects, shared: (
            values if _ONLY_INT.issuperset(map(type, values)) else [conv(v, None) for v in values]
        )
    if datatype == "decimal":
        return lambda values, subjects, shared: (
            values if _ONLY_FLOAT.issuperset(map(type, values)) else [conv(v, None) for v in values]
        )
    if datatype == "boolean" and special.isdisjoint(_YES_NO):
        return lambda values, subjects, shared: (
            list(map(_YES_NO.__getitem__, values))
            if _ONLY_STR.issuperset(map(type, values)) and _YES_NO.keys() >= set(values)
            else [conv(v, None) for v in values]
        )
    if datatype in ("code", "text", "time"):
        return lambda values, subjects, shared: (
            values
            if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values)
            else [conv(v, None) for v in values]
        )
    if datatype == "date" and deid.date_mode in ("shift", "none"):
        fromiso = dt.date.fromisoformat
        if deid.date_mode == "none":
            return lambda values, subjects, shared: (
                list(map(fromiso, values))
                if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values)
                else [conv(v, None) for v in values]
            )

        def shifted(values, subjects, shared):
            deltas = shared.get("deltas")
            if deltas is None:
                deltas = shared["deltas"] = [dt.timedelta(days=deid.shift_days(s)) for s in subjects]
            if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values):
                return list(map(operator.add, map(fromiso, values), deltas))
            return [
                fromiso(v) + delta if v.__class__ is str and v not in special else one(v)
                for v, delta in zip(values, deltas, strict=True)
            ]

        return shifted
    return None


@functools.cache
def _missing_cells(missing_codes: frozenset) -> dict[str, Missing]:
    """Code -> its cell, made once per set of codes (a wide export has hundreds of converters)."""
    return {code: Missing(code) for code in missing_codes}


def converter(col: Column, missing_codes, deid: Deidentifier):
    """A function (stored value, subject) -> cell value for one column; see `convert`."""
    missing = _missing_cells(frozenset(missing_codes))
    datatype = col.datatype
    if _is_file(col):
        return _file_converter(missing, deid)
    if datatype == "option":
        option = col.option

        def option_value(raw, subject):
            if raw.__class__ is str and raw in missing:
                return missing[raw]
            return 1 if raw and option in raw else 0

        return option_value
    if datatype in ("integer", "boolean", "decimal", "code", "text", "time"):
        cast = float if datatype == "decimal" else int if datatype in ("integer", "boolean") else str

        def scalar(raw, subject):
            if raw is None or raw == "":
                return None
            if raw.__class__ is str and raw in missing:
                return missing[raw]
            return cast(raw)

        return scalar
    if datatype == "date" and deid.date_mode == "shift":
        fromiso, delta, shift_days = dt.date.fromisoformat, dt.timedelta, deid.shift_days

        def shifted(raw, subject):
            if raw is None or raw == "":
                return None
            if raw in missing:
                return missing[raw]
            return fromiso(raw) + delta(days=shift_days(subject))

        return shifted
    return lambda raw, subject: convert(col, raw, subject, missing_codes, deid)


def _is_file(col: Column) -> bool:
    return col.item is not None and col.item.element.datatype == "file"


def _file_converter(missing: dict, deid: Deidentifier):
    """A file field's cells: the file's name or "[document]", or the content's path in the zip when
    the export includes file contents (capture/files/exports.py)."""
    names = FileNames(deid.identified, deid.file_paths)

    def file_value(raw, subject):
        if raw is None or raw == "":
            return None
        if raw.__class__ is str and raw in missing:
            return missing[raw]
        return names.shown(raw)

    def prefetch(values):
        names.prefetch(values)
        return values

    file_value.prefetch = prefetch  # type: ignore[attr-defined]
    return file_value


def convert(col: Column, raw, subject: Subject, missing_codes, deid: Deidentifier):
    """A stored value (see capture.records.validation) as the export's cell value."""
    datatype = col.datatype
    if datatype == "option":
        if isinstance(raw, str) and raw in missing_codes:
            return Missing(raw)
        return 1 if raw and col.option in raw else 0
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str) and raw in missing_codes:
        return Missing(raw)
    if _is_file(col):
        return FileNames(deid.identified, deid.file_paths).shown(raw)
    if datatype == "multi":
        if not isinstance(raw, list):
            return str(raw)
        order = {code: n for n, (code, _, _) in enumerate(col.codes)}  # the form's order, not storage's
        return "|".join(sorted(raw, key=lambda code: order.get(code, len(order))))
    if datatype in ("code", "text", "time"):
        return str(raw)
    if datatype == "boolean":
        return int(raw)
    if datatype == "integer":
        return int(raw)
    if datatype == "decimal":
        return float(raw)
    element_type = col.item.element.datatype  # type: ignore[union-attr]  # record columns have an item
    value = dt.date.fromisoformat(raw) if element_type == "date" else dt.datetime.fromisoformat(raw)
    return deid.date(value, subject)
