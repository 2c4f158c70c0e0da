"""Reading a REDCap import's rows: the data (JSON or CSV, flat or EAV) as rows, and each row's
cells by instrument with the form records they fill; `record_import.Importer` applies them.

The rows of a flat import share their header, so how each column is read (its instrument and
field, whether a value keeps its surrounding spaces, whether "0" is data) is worked out once per
header (`Header`), not once per cell: the row loop is a lookup and a strip per cell, and a blank
cell costs nothing unless the import overwrites.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from .params import RedcapError
from .project import Column, Project, RcEvent

if TYPE_CHECKING:
    from .record_import import Importer

EVENT_COL = "redcap_event_name"
INSTRUMENT_COL = "redcap_repeat_instrument"
INSTANCE_COL = "redcap_repeat_instance"
DAG_COL = "redcap_data_access_group"
SURVEY_COL = "redcap_survey_identifier"
ROW_KEYS = {EVENT_COL, INSTRUMENT_COL, INSTANCE_COL, DAG_COL, SURVEY_COL, "__eav", "__row"}
# FormRecord.instance is a 32-bit integer column: a larger instance would fail at the insert.
MAX_INSTANCE = 2**31 - 1
_CHECKBOX_MARKS = {"", "0", "1", "checked", "unchecked"}
_MARKS = frozenset(("", "0", "1"))  # a checkbox group's values taken at once (FormColumns.checks)
_SEEN_LIMIT = 4096  # combinations of a checkbox field's values remembered (CheckGroup.marks)
# How a column's values are put on a record (record_import.Importer.shape).
PLAIN, CHECKBOX, STATUS, OTHER = "plain", "checkbox", "status", "other"
_TIMESTAMP = re.compile(r"[a-z][a-z0-9_]*_timestamp")


@dataclass(frozen=True)
class CellProblem:
    """One thing wrong in an import: where (row, record, column), the value given, and why.
    `text` is what REDCap's API answers for it."""

    row: int
    record: str
    column: str
    value: str
    message: str
    text: str = ""

    def __str__(self) -> str:
        return self.text or f'"{self.record}","{self.column}","{self.value}","{self.message}"'


class RowError(Exception):
    """A row that cannot be imported at all (its record, event or instrument is wrong)."""

    def __init__(self, message: str, column: str = "", value: str = ""):
        super().__init__(message)
        self.message, self.column, self.value = message, column, value


# ----------------------------------------------------------------------------- reading the data


def parse_rows(fmt: str, record_type: str, text: str, record_id: str) -> Iterator[dict]:
    """The rows of `data`, each with string keys and values, read one at a time: a large import
    holds its text and the current chunk, never all its rows as objects."""
    rows = _json_objects(text) if fmt == "json" else _xml_rows(text) if fmt == "xml" else _csv_rows(text)
    plain = (
        {str(k).strip(): ("" if v is None else str(v)) for k, v in row.items() if k is not None}
        for row in rows
    )
    if record_type == "eav":
        return iter(_eav_to_flat(plain, record_id))
    return plain


def _xml_rows(text: str) -> Iterator[dict]:
    """REDCap's XML records, `<records><item><field>value</field>…</item>…</records>` (flat or
    EAV alike), parsed without DTDs or entities."""
    from capture.definitions.converters import xmlsafe

    try:
        root = xmlsafe.parse(text.lstrip("\ufeff"))
    except ValueError as exc:  # UnsafeXMLError is one
        raise RedcapError(f"The XML data are not valid: {exc}") from None
    for item in root:
        if xmlsafe.local(item.tag) == "item":
            yield {xmlsafe.local(cell.tag): cell.text or "" for cell in item if xmlsafe.local(cell.tag)}


def _csv_rows(text: str) -> Iterator[dict]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a field past the csv module's 128 KB limit
        raise RedcapError(f"The CSV data are not valid at line {reader.line_num}: {exc}.") from None


_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, at: int) -> int:
    """Where the JSON whitespace starting at `at` ends (`_SPACE` matches anywhere, even past the end)."""
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _json_objects(text: str) -> Iterator[dict]:
    """The objects of a JSON list (or one object), decoded one by one with the json module."""
    try:
        yield from _json_list(text, json.JSONDecoder())
    except RecursionError:
        raise RedcapError("The data are not valid JSON here: they are nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and int() past its 4300-digit limit
        raise RedcapError(f"The data are not valid JSON: {exc}") from None


def _json_list(text: str, decoder: json.JSONDecoder) -> Iterator[dict]:
    at = _skip_space(text, 0)
    if text.startswith("{", at):
        row, at = decoder.raw_decode(text, at)
        if text[_skip_space(text, at) :]:
            raise RedcapError("The data are not valid JSON: extra data after the object.")
        yield row
        return
    if not text.startswith("[", at):
        if not text[at:]:
            raise RedcapError("The data are not valid JSON: they are empty.")
        decoder.raw_decode(text, at)  # names what is wrong, if anything is
        raise RedcapError("The data must be a JSON list of objects, one per row.")
    at = _skip_space(text, at + 1)
    if text.startswith("]", at):
        return
    while True:
        row, at = decoder.raw_decode(text, at)
        if not isinstance(row, dict):
            raise RedcapError("The data must be a JSON list of objects, one per row.")
        yield row
        at = _skip_space(text, at)
        if text.startswith(",", at):
            at = _skip_space(text, at + 1)
        elif text.startswith("]", at):
            if text[_skip_space(text, at + 1) :]:
                raise RedcapError("The data are not valid JSON: extra data after the list.")
            return
        else:
            raise RedcapError(f"The data are not valid JSON: expected ',' or ']' at character {at}.")


def _eav_to_flat(rows: Iterable[dict], record_id: str) -> list[dict]:
    flat: dict[tuple, dict] = {}
    for row in rows:
        key = (
            row.get("record", ""),
            row.get(EVENT_COL, ""),
            row.get(INSTRUMENT_COL, ""),
            row.get(INSTANCE_COL, ""),
        )
        target = flat.setdefault(
            key, {record_id: key[0], EVENT_COL: key[1], INSTRUMENT_COL: key[2], INSTANCE_COL: key[3]}
        )
        target.setdefault("__eav", []).append((row.get("field_name", ""), row.get("value", "")))
    return list(flat.values())


def convert_date(value: str, datatype: str, date_format: str) -> str:
    if date_format == "ymd" or datatype not in ("date", "datetime") or not value:
        return value
    day_part, _, time_part = value.partition(" ")
    parts = day_part.replace("-", "/").split("/")
    if len(parts) != 3:
        return value  # let validation name the problem
    first, second, year = parts
    month, day = (first, second) if date_format == "mdy" else (second, first)
    try:
        iso = dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return value
    return f"{iso} {time_part}".strip()


def _cell_text(column: Column | None, given) -> str:
    """A cell's text: trimmed, except a text field's non-blank value, kept as REDCap keeps it."""
    text = "" if given is None else str(given)
    stripped = text.strip()
    if stripped and column is not None and column.field is not None and column.field.datatype == "text":
        return text
    return stripped


def comma_decimal(column: Column) -> bool:
    validation = (column.item.element.spec or {}).get("validation") or ""
    return validation.endswith("comma_decimal")


def _has_data(column: Column, value: str) -> bool:
    if value == "":
        return False
    if column.is_complete:
        return value != "0"
    if column.code:
        return value not in ("0",)
    return True


# ----------------------------------------------------------------------------- reading a row


class Cell(NamedTuple):
    """How one column of a header is read. A tuple, so the row loop unpacks it at tuple speed."""

    key: str  # the column's name in the rows
    column: Column
    keeps_spaces: bool  # a text field: a value keeps its surrounding spaces, as REDCap keeps them
    zero_is_blank: bool  # a status or checkbox column: "0" is no data
    checkbox: bool
    shape: tuple[str, str] = ("", "")  # (item, how its values are put): the importer's, set by header_for
    plain: bool = False  # a plain value (Importer.shape): put by name, its non-blank text as it is


class FormCells(NamedTuple):
    """One form's cells of a row: plain values by item (Cell.plain), the others to put one by one
    as (shape, column, value), and checkbox fields' marks as (item, codes checked, codes unchecked)."""

    plain: dict[str, str]
    others: list[tuple[tuple[str, str], Column, str]]
    checks: list[tuple[str, tuple[str, ...], tuple[str, ...]]]


class CheckGroup(NamedTuple):
    """The columns of one checkbox field in a header (`<field>___<code>`, distinct codes), read at once."""

    name: str  # the item
    codes: tuple[str, ...]
    start: int  # where its values are in the form's (FormColumns.getter)
    end: int
    cells: tuple[Cell, ...]  # read one by one when a value is not 1, 0 or blank
    seen: dict  # the field's values as a row gives them -> (codes checked, unchecked), or None: one by one

    def marks(self, values: tuple) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(the codes `values` check, the codes they uncheck), or None when a value is not 1, 0 or
        blank (the cells are read one by one); remembered, as a field's rows repeat their values."""
        if values in self.seen:
            return self.seen[values]
        found = None
        if _MARKS.issuperset(values):
            found = (
                tuple([code for code, v in zip(self.codes, values, strict=True) if v == "1"]),
                tuple([code for code, v in zip(self.codes, values, strict=True) if v == "0"]),
            )
        if len(self.seen) < _SEEN_LIMIT:
            self.seen[values] = found
        return found


class FormColumns(NamedTuple):
    """One form's columns in a header, and a getter of all their values from a row (one tuple, in
    the order: cells, plain cells, checkbox fields). `cells` are read one by one; the plain cells
    (Cell.plain, set by the importer) all at once, by item (`plain`; the cells themselves for
    values with spaces); checkbox fields a field at a time."""

    form: str
    cells: list[Cell]
    getter: Callable[[dict], tuple]
    plain: tuple[str, ...] = ()
    plain_cells: tuple[Cell, ...] = ()
    checks: tuple[CheckGroup, ...] = ()

    def split(self, shaped: list[Cell], *, at_once: bool) -> FormColumns:
        """These columns with `shaped` (their cells with the importer's shape): with `at_once`, the
        plain cells and the checkbox fields apart from the others (read one by one)."""
        if not at_once:
            return FormColumns(self.form, shaped, _getter([c.key for c in shaped]))
        plain = tuple(c for c in shaped if c.plain)
        fields: dict[str, list[Cell]] = {}
        for c in shaped:
            if c.shape[1] == CHECKBOX:
                fields.setdefault(c.shape[0], []).append(c)
        groups = [group for group in fields.values() if len({c.column.code for c in group}) == len(group)]
        grouped = {c.key for group in groups for c in group}
        others = [c for c in shaped if not c.plain and c.key not in grouped]
        at = len(others) + len(plain)
        checks = []
        for group in groups:
            codes = tuple(c.column.code for c in group)
            checks.append(CheckGroup(group[0].shape[0], codes, at, at + len(group), tuple(group), {}))
            at += len(group)
        keys = [c.key for c in others] + [c.key for c in plain] + [c.key for group in groups for c in group]
        return FormColumns(
            self.form, others, _getter(keys), tuple(c.shape[0] for c in plain), plain, tuple(checks)
        )


@dataclass
class Header:
    """How the rows of one header are read: its columns by instrument, and the others."""

    # each form's columns: a form whose cells are all blank is passed over at once (a flat export's
    # row fills one event's forms of many)
    forms: list[FormColumns] = field(default_factory=list)
    by_name: list[str] = field(default_factory=list)  # a checkbox named by its field (its value: the code)
    timestamps: list[str] = field(default_factory=list)  # `[instrument]_timestamp`: read, not imported
    unknown: list[str] = field(default_factory=list)
    survey: bool = False  # a redcap_survey_identifier column to report as not imported


def find_column(project: Project, name: str) -> Column | None:
    """The project's column `name`; checkbox codes are matched case-insensitively."""
    column = project.columns.get(name)
    if column is None and "___" in name:
        base, _, code = name.rpartition("___")
        column = project.columns.get(f"{base}___{code.lower()}")
    return column


def read_header(project: Project, keys: Iterable, left_out: frozenset[str] = frozenset()) -> Header:
    """How rows with these keys (in this order) are read; `left_out` columns are not read."""
    header = Header()
    forms: dict[str, list[Cell]] = {}
    keys = list(keys)
    header.survey = SURVEY_COL in keys and SURVEY_COL not in left_out
    for name in keys:
        if name is None or name in ROW_KEYS or name == project.record_id or name in left_out:
            continue
        column = find_column(project, name)
        if column is None:
            if name in project.fields_by_name:
                header.by_name.append(name)
            elif _TIMESTAMP.fullmatch(name) and name.removesuffix("_timestamp") in project.instruments:
                header.timestamps.append(name)
            else:
                header.unknown.append(name)
            continue
        f = column.field
        text = f is not None and f.datatype == "text" and not column.code
        forms.setdefault(column.form, []).append(
            Cell(name, column, text, column.is_complete or bool(column.code), bool(column.code))
        )
    header.forms = [
        FormColumns(form, entries, _getter([e.key for e in entries])) for form, entries in forms.items()
    ]
    return header


def _getter(keys: list[str]) -> Callable[[dict], tuple]:
    """A function giving a row's values of `keys`, always as a tuple (itemgetter of one key does not)."""
    if not keys:
        return lambda row: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return itemgetter(*keys)


class RowImport:
    """One row: its subject, event and instrument, its cells by instrument, applied to the importer."""

    def __init__(self, importer: Importer, row: dict, number: int):
        self.importer, self.row, self.number = importer, row, number
        self.project = importer.project
        self.rid = str(row.get(self.project.record_id, "")).strip()
        self.where = f"row {number}"

    def apply(self) -> None:
        if not self.rid:
            raise RedcapError(
                f'{self.where}: the record id field "{self.project.record_id}" is missing or blank.'
            )
        subject = self.importer.subject_for(self.rid, self.row, self.number)
        rc_event = self._event(subject)
        cells, data = self.cells()
        event_instance: int | None = None  # a repeating event's new instance: one for all its forms
        for instrument, instance in self._targets(rc_event, cells, data):
            if instance == "new" and rc_event.repeats:
                event_instance = event_instance or self.importer.new_instance(subject, rc_event, "")
                instance = event_instance
            elif instance == "new":
                instance = self.importer.new_instance(subject, rc_event, instrument)
            self.importer.apply(
                subject, rc_event, instrument, int(instance), cells.get(instrument), self.rid, self.number
            )

    def _event(self, subject) -> RcEvent:
        given = self.row.get(EVENT_COL, "").strip()
        rc_event = self.project.event_for(subject.arm_id, given)
        if rc_event is None:
            events = ", ".join(e.unique_name for e in self.project.events if e.event.arm_id == subject.arm_id)
            raise RowError(
                f'{self.where}: "{given}" is not an event of record {self.rid}\'s arm; use one of: {events}.',
                EVENT_COL,
                given,
            )
        return rc_event

    def cells(self) -> tuple[dict[str, FormCells], set[str]]:
        """(the row's cells by instrument, the instruments it gives data for). Blank cells are left
        out unless the import overwrites; unknown columns are an error, timestamps are set aside.
        Plain values (Cell.plain) go straight into their form's dict of values, trimmed all at once,
        and a checkbox field's 1s and 0s are read at once; the others are listed with their column
        for the importer to put."""
        importer, row = self.importer, self.row
        header = importer.header_for(row)
        cells: dict[str, FormCells] = {}
        data: set[str] = set()
        overwrite = importer.overwrite
        for form, entries, getter, names, plain_cells, checks in header.forms:
            everything = getter(row)
            if not overwrite and not any(everything):
                continue  # every cell of the form blank: nothing to put
            givens = everything[: len(entries)]
            plain_givens = everything[len(entries) : len(entries) + len(names)]
            plain = self._plain(names, plain_givens, plain_cells) if plain_givens else {}
            out: list = []
            checked: list = []
            has_data = bool(plain)
            for check in checks:
                values = everything[check.start : check.end]
                found = check.marks(values)
                if found is None:
                    has_data = self._one_by_one(check.cells, values, out) or has_data
                elif found[0] or found[1]:
                    checked.append((check.name, *found))
                    has_data = has_data or bool(found[0])
            has_data = self._one_by_one(entries, givens, out) or has_data
            if has_data:
                data.add(form)
            if out or plain or checked:
                cells[form] = FormCells(plain, out, checked)
        self._others(header, cells, data)
        return cells, data

    def _one_by_one(self, entries, givens: tuple, out: list) -> bool:
        """Read cells one by one onto `out` as (shape, column, value); True when one is data."""
        importer = self.importer
        overwrite = importer.overwrite
        has_data = False
        for (key, column, keeps_spaces, zero_is_blank, checkbox, shape, _), given in zip(
            entries, givens, strict=True
        ):
            value = given.strip() if given else ""
            if not value:
                if overwrite:
                    out.append((shape, column, ""))
                continue
            if checkbox and value != "0" and value != "1" and value.lower() not in _CHECKBOX_MARKS:
                importer.problem(
                    self.number, self.rid, key, value, "a checkbox column holds 1 (checked) or 0"
                )
                continue
            if not zero_is_blank or value != "0":
                has_data = True
            if keeps_spaces:
                value = given
            elif value != given:
                importer.trimmed[key] = importer.trimmed.get(key, 0) + 1
            out.append((shape, column, value))
        return has_data

    def _plain(self, names: tuple[str, ...], givens: tuple, plain_cells: tuple[Cell, ...]) -> dict[str, str]:
        """The non-blank plain values by item: trimmed at once when no value has spaces around it
        (nor is missing); else one by one, a text value keeping its spaces, the trims counted."""
        try:
            stripped = tuple(map(str.strip, givens))
        except TypeError:  # a missing cell (None)
            stripped = ()
        if stripped == givens:
            return {name: value for name, value in zip(names, stripped, strict=True) if value}
        plain = {}
        for cell, given in zip(plain_cells, givens, strict=True):
            value = given.strip() if given else ""
            if not value:
                continue
            if cell.keeps_spaces:
                value = given
            elif value != given:
                self.importer.trimmed[cell.key] = self.importer.trimmed.get(cell.key, 0) + 1
            plain[cell.shape[0]] = value
        return plain

    def _others(self, header: Header, cells: dict, data: set[str]) -> None:
        """The row's cells named on their own; its timestamps and survey id set aside; unknown columns."""
        importer, row = self.importer, self.row
        for name, given in [*row.get("__eav", ()), *((name, row[name]) for name in header.by_name)]:
            self._named(name, given, cells, data, header)
        for name in header.timestamps:
            importer.not_imported[name] = None
        if header.survey and row.get(SURVEY_COL, ""):
            importer.not_imported[SURVEY_COL] = None
        if header.unknown:
            raise RowError(
                "The following fields were not found in the project as real data fields: "
                + ", ".join(header.unknown),
                header.unknown[0],
            )

    def _named(self, name: str, given, cells: dict, data: set[str], header: Header) -> None:
        """One cell named on its own (an EAV row's, or a checkbox named by its field)."""
        column = find_column(self.project, name)
        value = _cell_text(column, given)
        if column is None and name in self.project.fields_by_name:
            column, value = self._checkbox_by_code(name, value)
            if column is None:
                return
        if column is None:
            if _TIMESTAMP.fullmatch(name) and name.removesuffix("_timestamp") in self.project.instruments:
                self.importer.not_imported[name] = None
            else:
                header.unknown = [*header.unknown, name] if name not in header.unknown else header.unknown
            return
        if column.code and value.lower() not in _CHECKBOX_MARKS:
            self.importer.problem(
                self.number, self.rid, name, value, "a checkbox column holds 1 (checked) or 0"
            )
            return
        cells.setdefault(column.form, FormCells({}, [], [])).others.append(
            (self.importer.shape(column), column, value)
        )
        if _has_data(column, value):
            data.add(column.form)

    def _checkbox_by_code(self, name: str, value: str) -> tuple[Column | None, str]:
        instrument, f = self.project.fields_by_name[name]
        if not f.multiple:
            return None, value
        column = next(
            (
                c
                for c in self.project.instruments[instrument].columns
                if c.field is f and c.code.lower() == value.lower()
            ),
            None,
        )
        if column is None:
            self.importer.problem(self.number, self.rid, name, value, "not one of the choices")
            return None, value
        return column, "1"

    def _targets(self, rc_event: RcEvent, cells: dict, data: set[str]) -> list[tuple[str, int | str]]:
        instrument = self.row.get(INSTRUMENT_COL, "").strip()
        if instrument:
            return [(instrument, self._repeat_target(rc_event, instrument, cells, data))]
        # A repeating event's row is one instance of all its forms; another event's row, their one record.
        instance = self._instance() if rc_event.repeats else 1
        targets: list[tuple[str, int | str]] = []
        for form_name in cells:
            # Blank cells matter only when they overwrite, and only on the form's own row.
            erases = (
                self.importer.overwrite
                and form_name in rc_event.form_names
                and (rc_event.repeats or form_name not in rc_event.repeating)
            )
            if form_name not in data and not erases:
                continue
            if form_name not in rc_event.form_names:
                raise RowError(
                    f'{self.where}: form "{form_name}" is not collected at event {rc_event.unique_name}.',
                    EVENT_COL,
                    rc_event.unique_name,
                )
            if form_name in rc_event.repeating and not rc_event.repeats:
                raise RowError(
                    f'{self.where}: form "{form_name}" repeats at {rc_event.unique_name}; give redcap_repeat_instrument '
                    "and redcap_repeat_instance.",
                    INSTRUMENT_COL,
                )
            targets.append((form_name, instance))
        return targets

    def _repeat_target(self, rc_event: RcEvent, instrument: str, cells: dict, data: set[str]) -> int | str:
        if rc_event.repeats:
            raise RowError(
                f"{self.where}: event {rc_event.unique_name} repeats as a whole; leave redcap_repeat_instrument "
                "blank and give redcap_repeat_instance.",
                INSTRUMENT_COL,
                instrument,
            )
        if instrument not in rc_event.repeating:
            raise RowError(
                f'{self.where}: instrument "{instrument}" does not repeat at event {rc_event.unique_name}.',
                INSTRUMENT_COL,
                instrument,
            )
        for form_name in cells:
            if form_name != instrument and form_name in data:
                raise RowError(
                    f'{self.where}: a row for repeating instrument "{instrument}" carries values of "{form_name}"; '
                    "put them on their own row.",
                    INSTRUMENT_COL,
                    instrument,
                )
        return self._instance()

    def _instance(self) -> int | str:
        """The row's redcap_repeat_instance: a number (1 when blank), or "new"."""
        raw = str(self.row.get(INSTANCE_COL, "")).strip()
        if raw.lower() == "new":
            return "new"
        try:
            instance = int(raw or "1")
            if not 1 <= instance <= MAX_INSTANCE:
                raise ValueError(instance)
        except ValueError:
            raise RowError(
                f'{self.where}: redcap_repeat_instance must be a number from 1 to {MAX_INSTANCE} or "new".',
                INSTANCE_COL,
                raw,
            ) from None
        return instance
