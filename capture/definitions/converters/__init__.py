"""Converters between Capture definitions and other systems' formats.

Every reader returns a `Conversion`: the validated pydantic definitions (capture.definitions.schema)
and every problem found, each with the line and column (or XML path) it comes from. Nothing is
written here; `capture.definitions.services` loads a conversion through the loader.

* `redcap`  — REDCap data dictionaries (CSV, UI or API column names), arms/events/mapping CSVs, and back;
* `cadsr`   — caDSR CDE XML exports and Form Builder (FormCart) XML;
* `odm`     — CDISC ODM 1.3.2 metadata in and out, REDCap project XML (ODM 1.3.1 + redcap:) in.

Severity: an "error" stops the import (the file must be fixed); a "warning" names a construct that
Capture keeps in another form or cannot represent, so that nothing is lost in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..loader import DefinitionError, ParsedSet, check_parsed
from ..schema import DataElement, FormFile, ScheduleFile


@dataclass(frozen=True)
class Problem:
    message: str
    severity: str = "error"  # "error" stops the import; "warning" (something changed form) and "note" do not
    line: int | None = None
    column: str | None = None  # e.g. "H (Text Validation Type OR Show Slider Number)" or an XML path
    where: str | None = None  # e.g. "field 'bmi'"

    def __str__(self) -> str:
        place = []
        if self.line is not None:
            place.append(f"line {self.line}")
        if self.column:
            place.append(f"column {self.column}")
        if self.where:
            place.append(self.where)
        return (", ".join(place) + ": " if place else "") + self.message


@dataclass
class Conversion:
    source: str
    kind: str
    elements: list[DataElement] = field(default_factory=list)
    forms: list[FormFile] = field(default_factory=list)
    schedule: ScheduleFile | None = None
    problems: list[Problem] = field(default_factory=list)
    title: str = ""
    # A REDCap project's record id field (its dictionary's first field): the subject id, not an item.
    record_id_field: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    def error(self, message: str, **where) -> None:
        self.problems.append(Problem(message, "error", **where))

    def warn(self, message: str, **where) -> None:
        self.problems.append(Problem(message, "warning", **where))

    def note(self, message: str, **where) -> None:
        """Something the user should know that loses nothing."""
        self.problems.append(Problem(message, "note", **where))

    def parsed_set(self) -> ParsedSet:
        parsed = ParsedSet()
        for element in self.elements:
            parsed.elements[element.ref] = (self.source, element)
        for form in self.forms:
            parsed.forms[form.ref] = (self.source, form)
        if self.schedule is not None:
            parsed.schedules[self.schedule.ref] = (self.source, self.schedule)
        return parsed

    def cross_check(self) -> None:
        """Run the loader's cross-checks (names, references, matrices) and keep what they find."""
        if self.errors:
            return
        try:
            check_parsed(self.parsed_set())
        except DefinitionError as exc:
            for problem in exc.problems:
                self.error(problem.removeprefix(f"{self.source}: "))

    def elements_by_ref(self) -> dict[str, DataElement]:
        return {e.ref: e for e in self.elements}
