"""What an import found: each problem (sheet, row, column, value, reason), the plan of what would be
written, and the report both become, as the dry-run page, the job and the command show it.

A problem names the cell it is about so that the annotated workbook (annotate.py) can mark it; a
problem of the mapping or of the file has no row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from django.core.exceptions import ValidationError

from capture.records.bulk import RecordWrite

from .mapping import number_text
from .structure import SubjectRef

MAX_STORED_PROBLEMS = 5000
MAX_CHANGES_SHOWN = 200
# A report stores up to MAX_STORED_PROBLEMS problems and the page shows them: a cell's value in
# one is cut to this many characters, so a sheet of long cells does not make a huge report.
VALUE_SHOWN = 200

Progress = Callable[[int, int | None, str], None]


def no_progress(done: int, total: int | None = None, message: str = "") -> None:
    return None


def cell_text(value) -> str:
    """A cell as the text a person reads in it (54.0 is "54"; blank is "")."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return number_text(value)
    return str(value).strip()


def shorten(value, limit: int = VALUE_SHOWN):
    """`value` cut to `limit` characters with an ellipsis, for showing it (not for importing it)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def describe(p: dict) -> str:
    """One problem of a report as a sentence: where, the value, and why."""
    if not p:
        return ""
    where = []
    if p.get("sheet"):
        where.append(f"sheet {p['sheet']!r}")
    if p.get("row"):
        where.append(f"row {p['row']}")
    if p.get("column"):
        where.append(f"column {p['column']} ({p['header']})" if p.get("header") else f"column {p['column']}")
    value = f" value {p['value']!r}:" if p.get("value") not in (None, "") else ""
    return f"{', '.join(where) or 'mapping'}:{value} {p['reason']}"


class ImportRefusedError(ValidationError):
    """The plan has problems; nothing was written. `report` holds them all."""

    def __init__(self, report: dict):
        self.report = report
        count = report["counts"]["problems"]
        first = report["problems"][0] if report["problems"] else {}
        super().__init__(
            f"Nothing was imported: {count} problem(s) found, the first: {describe(first)}. "
            "Fix them (see the dry-run report) and import again."
        )


@dataclass
class Problem:
    row: int | None  # the spreadsheet's row number; None for a problem of the mapping or the file
    column: str  # the column's letter (A, B, …) or "" when the problem is not one cell's
    header: str
    value: str
    reason: str
    sheet: str = ""
    severity: str = "error"

    def as_dict(self) -> dict:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "header": self.header,
            "value": shorten(self.value),
            "reason": self.reason,
            "severity": self.severity,
        }


class EnrolmentPlan(Protocol):
    """What a plan keeps of the subjects its import would enrol: enrol.Enrolment (which imports
    this module, so the plan names only what it uses)."""

    planned: dict  # the sheet's key → enrol.NewSubject

    def report(self) -> dict: ...

    def enrol(self, actor, reason: str) -> dict[int, SubjectRef]: ...


@dataclass
class Plan:
    """What an import would do: the records to write, what it found wrong, and the counts."""

    sheet: str
    rows: int
    writes: list[RecordWrite] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    details: list[dict] = field(default_factory=list)
    enrolment: EnrolmentPlan | None = None  # the subjects the import would enrol
    not_imported: list[str] = field(default_factory=list)  # the sheet's headers the mapping leaves out

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def report(self, *, committed: bool = False) -> dict:
        errors = self.errors
        problems = sorted(self.problems, key=lambda p: (p.row or 0, p.column))
        return {
            "sheet": self.sheet,
            "committed": committed,
            "counts": {
                "rows": self.rows,
                "new": self.new,
                "changed": self.changed,
                "unchanged": self.unchanged,
                "problems": len(errors),
                "warnings": len(self.problems) - len(errors),
            },
            "problems": [p.as_dict() for p in problems[:MAX_STORED_PROBLEMS]],
            "truncated": max(0, len(problems) - MAX_STORED_PROBLEMS),
            "changes": self.details[:MAX_CHANGES_SHOWN],
            "not_imported": self.not_imported,
            "enrolment": self.enrolment.report() if self.enrolment is not None else None,
        }
