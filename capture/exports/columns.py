"""Columns of an export and the values in them.

A Column says where its value comes from (subject, a form item at an event, an imaging
summary), what it is (its export datatype and permissible values) and which data element it
carries, so every writer and the codebook describe it the same way.

Cell values are plain Python: str, int, float, datetime.date, or `Missing(code)` for a
study's missing-data code (kept apart from a blank, which is None). Writers decide how each
of those looks in their format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Export datatypes. If you add one, teach every writer (writers/*.py) and the codebook.
#   text, integer, decimal, date, datetime, time: as the element's datatype
#   code: one of permissible values (`codes`); boolean: 1/0; option: a checkbox option, 1/0
#   days: whole days since enrolment (dates in "offset" mode, imaging days)
#   status: a form record's status 0/1/2
DATATYPES = {
    "text",
    "integer",
    "decimal",
    "date",
    "datetime",
    "time",
    "code",
    "boolean",
    "option",
    "days",
    "status",
}

BOOLEAN_CODES = (("1", "Yes", ""), ("0", "No", ""))
OPTION_CODES = (("1", "Checked", ""), ("0", "Unchecked", ""))
STATUS_CODES = (("0", "Incomplete", ""), ("1", "Unverified", ""), ("2", "Complete", ""))


@dataclass(frozen=True)
class Missing:
    """A study missing-data code (e.g. UNK) in a cell, distinct from a blank."""

    code: str

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True)
class ElementInfo:
    public_id: str
    version: str
    name: str
    long_name: str
    question: str
    datatype: str
    unit: str
    identifier: bool
    codes: tuple[tuple[str, str, str], ...]  # (code, meaning, concept code)

    @property
    def ref(self) -> str:
        return f"{self.public_id}@{self.version}"


@dataclass(frozen=True)
class Item:
    """One item of a form version, with its element."""

    form: str
    form_version: str
    form_title: str
    name: str
    label: str
    element: ElementInfo
    group: str | None
    repeating: bool  # in a repeating item group
    checkbox: bool

    @property
    def free_text(self) -> bool:
        return self.element.datatype == "text" and not self.element.codes


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    datatype: str
    source: str  # subject | record | status | context | imaging
    key: str = ""  # subject/context/imaging: which attribute
    item: Item | None = None
    form: str | None = None
    event: str | None = None  # wide layout: the event this column belongs to
    event_id: int | None = None
    instance: int | None = None  # wide layout: the instance of a repeating event form
    row: int | None = None  # a row of a repeating item group (wide and long layouts)
    option: str | None = None  # a checkbox option
    codes: tuple[tuple[str, str, str], ...] = ()
    note: str = ""

    @property
    def labelled(self) -> bool:
        return self.datatype in ("code", "boolean", "option", "status")

    def meaning(self, code: str) -> str:
        for value, meaning, _ in self.codes:
            if value == code:
                return meaning
        return code


class Batch:
    """A chunk of a table's rows, held as columns: `columns[n]` holds column n's cells.

    Columns are what the typed formats (Parquet, the statistical formats) and the per-column
    formatting of the text formats want; `rows()` gives the rows for the writers that go row
    by row (XLSX)."""

    __slots__ = ("columns", "length")

    def __init__(self, columns: list, length: int) -> None:
        self.columns = columns
        self.length = length

    @classmethod
    def from_rows(cls, rows: list[list], width: int) -> Batch:
        if not rows:
            return cls([() for _ in range(width)], 0)
        return cls(list(zip(*rows, strict=True)), len(rows))

    def __len__(self) -> int:
        return self.length

    def rows(self):
        return zip(*self.columns, strict=True)


@dataclass
class Table:
    """A table of the export: its columns, and a function that yields its rows a batch at a time."""

    name: str
    title: str
    columns: list[Column]
    batches: Callable[[], Iterator[Batch]]
    rows_written: int = 0


_NOT_NAME = re.compile(r"[^a-z0-9_]+")


def safe_name(raw: str) -> str:
    """A full column name: lower case letters, digits and _, a letter first, never cut. CSV, XLSX
    and Parquet write it as it is; the statistical formats shorten it where they must (naming.py)."""
    name = _NOT_NAME.sub("_", raw.lower()).strip("_") or "v"
    if not name[0].isalpha():
        name = f"v_{name}"
    return name


class NameBook:
    """Hands out unique safe names within one table."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, raw: str) -> str:
        name = safe_name(raw)
        candidate, n = name, 1
        while candidate in self.used:
            n += 1
            candidate = f"{name}_{n}"
        self.used.add(candidate)
        return candidate
