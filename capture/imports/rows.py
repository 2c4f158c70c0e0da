"""A row of the sheet as the plan holds it: where it goes (`RowPlace`) and, for each form it fills,
the record it would write (`RowPlan`). plan.py makes them; compare.py validates and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from capture.definitions.models import Event, EventForm

from .fastpath import FastForm
from .mapping import ItemColumn
from .structure import SubjectRef


@dataclass
class RowPlan:
    """One form record that one row of the sheet fills: where the record is, and what the row gives it."""

    row: int  # the sheet's row number
    subject: SubjectRef
    event: Event
    event_form: EventForm
    form_name: str
    instance: int
    values: dict
    blanks: set  # (group or None, group row, item) of blank cells: cleared only in overwrite mode
    status: int | None  # from the form's status column; None keeps the record's (or the default)
    columns: dict[str, ItemColumn]  # where a value goes (item or group[i].item) → its column
    cells: list  # the row as read (not a copy), to quote a cell in a problem
    # The fast path (fastpath.py): the fields already cleaned by the form's validator as the cells
    # were read, with their errors; `values` and `blanks` are then read only if the record exists.
    clean: dict | None = None
    errors: dict | None = None
    fast: FastForm | None = None
    calculated: list | None = None  # (column, cleaned cell) of columns mapped to calculated items

    @property
    def label(self) -> str:
        return f"{self.subject.subject_id} / {self.event.name} / {self.form_name} #{self.instance}"


@dataclass
class RowPlace:
    """Where a row goes, before its forms: the subject, the event, the instance and the repeating form."""

    subject: SubjectRef
    event_label: str  # the event as the row names it, for a problem
    event: Event
    instance: int
    repeat_form: str
