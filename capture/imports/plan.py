"""Build an import's plan: clean and validate every row against the study, and say what would be
new, changed or unchanged. Writes nothing.

The steps, in order: the file's own problems (warnings of the reader, cells linked to another
workbook, no data rows); the mapping resolved into column objects (columns.py), with every problem
of the mapping; then each row — its subject (an existing one, one found through the crosswalk of the
sheet's ids, or one to enrol: enrol.py), event and instance, then each form it fills, every cell
cleaned into a `RowPlan`. Every bad cell of a row is reported: a row whose place is wrong fills no
record, but its other cells are still cleaned and checked by the form's rules. Last, each RowPlan
is compared with the stored record and validated by the form's rules (compare.py).
"""

from __future__ import annotations

from capture.definitions.models import EventForm
from capture.records.bulk import FormValidator
from capture.studies import access
from capture.studies.models import Study

from . import readers
from .columns import (
    CellProblem,
    FormCells,
    FormColumns,
    SheetColumns,
    imported_headers,
    resolve_columns,
)
from .compare import compare
from .enrol import Crosswalk, Enrolment
from .fastpath import FastForm
from .mapping import Mapping
from .report import Plan, Problem, Progress, cell_text, no_progress
from .rows import RowPlace, RowPlan
from .structure import StudyForms, SubjectRef
from .uploads import check_may_import

PROGRESS_EVERY = 2000
LINKED_CELL = (
    "The cell is a link to another workbook; its value is a copy that was not imported. "
    "Replace the link by the value (Copy, Paste Special › Values) and upload again."
)


def build_plan(
    *, actor, study: Study, table: readers.Table, mapping: Mapping, progress: Progress = no_progress
) -> Plan:
    """Clean and validate every row against the study; say what would be new, changed, unchanged.
    Writes nothing."""
    check_may_import(actor, study)
    structure = StudyForms.of(study)
    plan = Plan(sheet=table.sheet, rows=len(table.rows))
    plan.problems += _file_problems(table, mapping)
    missing_codes = study.missing_code_set()
    columns, problems = resolve_columns(table, mapping, structure, missing_codes, study.name)
    plan.problems += problems
    enrolment, problems = Enrolment.resolve(actor, study, table, mapping, structure)
    plan.problems += problems
    plan.not_imported = [col.header for col in columns.ignored if col.header]
    if plan.errors:
        return plan
    subjects = _subjects(actor, study)
    columns.subject.load(subjects, Crosswalk.of(actor, study, subjects), enrolment)
    plan.enrolment = enrolment
    planner = _Planner(plan, table, columns, structure, mapping, missing_codes)
    total = len(table.rows)
    for done, (row, cells) in enumerate(table.rows, 1):
        if done % PROGRESS_EVERY == 0:
            progress(done, total, f"Checking row {row}")
        planner.add_row(row, cells)
    progress(total, total, "Comparing with stored records")
    compare(plan, planner.rows, study, mapping, missing_codes, table.headers, planner.validators)
    return plan


def _file_problems(table: readers.Table, mapping: Mapping) -> list[Problem]:
    """The reader's warnings, the cells linked to another workbook, and a sheet without data."""
    sheet = table.sheet
    problems = [Problem(None, "", "", "", warning, sheet, "warning") for warning in table.warnings]
    used = imported_headers(mapping)
    for row, index, formula in table.external:
        # The cached copy of another workbook's cell is not data Capture can check: the reader blanked
        # it; an imported column must not go in without it, an unused one only says so.
        header = table.headers[index] if index < len(table.headers) else ""
        severity = "error" if header and header in used else "warning"
        problems.append(
            Problem(row, readers.column_letter(index), header, formula, LINKED_CELL, sheet, severity)
        )
    if not table.rows:
        # An empty import would "succeed" with nothing written, which hides a wrong sheet or header row.
        problems.append(
            Problem(
                None,
                "",
                "",
                "",
                f"The sheet has no data rows below the header (row {table.header_row}); nothing to import. "
                "Choose the sheet and the header row the data is under.",
                sheet,
            )
        )
    return problems


def _subjects(actor, study: Study) -> dict[str, SubjectRef]:
    """The subjects the actor can see, by subject id."""
    arm_names = dict(study.schedule.arms.values_list("pk", "name"))
    visible = access.subjects_visible_to(actor, study)
    return {
        subject_id: SubjectRef(pk, subject_id, site_id, arm_id, study_id, arm_names[arm_id])
        for pk, subject_id, site_id, arm_id, study_id in visible.values_list(
            "pk", "subject_id", "site_id", "arm_id", "study_id"
        )
    }


class _Planner:
    """Walks the rows: each row's place, then the RowPlan of each form it fills, or its problems."""

    def __init__(
        self, plan: Plan, table, columns: SheetColumns, structure: StudyForms, mapping, missing_codes
    ):
        self.plan = plan
        self.sheet = table.sheet
        self.headers = table.headers
        self.columns = columns
        self.structure = structure
        self.overwrite = mapping.overwrite
        self.missing_codes = missing_codes
        self.rows: list[RowPlan] = []
        self.seen: dict[tuple, int] = {}  # (subject, event, form, instance) → the row that fills it
        self.validators: dict[int, FormValidator] = {}
        shared: dict[tuple, dict] = {}  # columns that clean alike remember outcomes together
        self.places = {}
        for name, form in columns.forms.items():
            form.fast = FastForm.of(name, form.items, structure, self.validators, missing_codes, shared)
            self.places[name] = form.by_place

    def problem(self, row: int, index: int | None, value, reason: str, severity: str = "error") -> None:
        letter = readers.column_letter(index) if index is not None else ""
        header = self.headers[index] if index is not None else ""
        self.plan.problems.append(
            Problem(row, letter, header, cell_text(value), reason, self.sheet, severity)
        )

    def add_row(self, row: int, cells: list) -> None:
        place, problems = self._place(row, cells)
        for p in problems:
            self.problem(row, p.index, p.value, p.reason)
        for name, form in self.columns.forms.items():
            if place is None:
                # The row fills no record, but every other bad cell of it is still reported.
                self._check_form(row, cells, form)
                continue
            instance = self.columns.repeat_form.instance_for(name, place.repeat_form, place.instance)
            if instance is not None:
                self._add_form(row, cells, place, form, instance)

    def _place(self, row: int, cells: list) -> tuple[RowPlace | None, list[CellProblem]]:
        """Where the row goes, or None with every problem of its subject, event and instance cells.
        Without the subject there is no arm to check the event against: the event is then checked
        against every arm's events."""
        c = self.columns
        problems: list[CellProblem] = []

        def attempt(clean, *args):
            try:
                return clean(*args)
            except CellProblem as p:
                problems.extend(getattr(p, "all", [p]))
                return None

        subject = attempt(c.subject.clean, cells, row)
        if subject is not None:
            found = attempt(c.event.clean, cells, subject)
        else:
            found = None
            attempt(c.event.check_any_arm, cells)
        instance = attempt(c.instance.clean, cells)
        if problems:
            return None, problems
        label, event = found
        return RowPlace(subject, label, event, instance, c.repeat_form.text(cells)), problems

    def _check_form(self, row: int, cells: list, form: FormColumns) -> None:
        found = form.clean(cells, overwrite=self.overwrite)
        for p in found.problems:
            self.problem(row, p.index, p.value, p.reason)
        for p in found.notes:
            self.problem(row, p.index, p.value, p.reason, "warning")
        # The form's own rules for each value, as on a new record (the row has no record to merge
        # into): a decimal place too many is as much a bad cell as a word in a number column.
        if form.fast is not None:
            errors = found.errors or {}
        else:
            validator = self._validator(form.form_name)
            if not found.values or validator.compiled.events_read:
                return
            errors = validator.clean(found.values, missing_codes=self.missing_codes, complete=False)[1]
        for where, reason in errors.items():
            col = self.places[form.form_name].get(where)
            if col is not None:
                self.problem(row, col.index, cells[col.index], reason)

    def _validator(self, form_name: str) -> FormValidator:
        form = self.structure.forms[form_name]
        return self.validators.get(form.pk) or self.validators.setdefault(form.pk, FormValidator(form))

    def _add_form(self, row: int, cells: list, place: RowPlace, form: FormColumns, instance: int) -> None:
        found = form.clean(cells, overwrite=self.overwrite)
        for p in found.problems:
            self.problem(row, p.index, p.value, p.reason)
        for p in found.notes:
            self.problem(row, p.index, p.value, p.reason, "warning")
        if not found.problems and not found.filled and found.status is None:
            for col, _ in found.calculated:
                self.problem(
                    row,
                    col.index,
                    cells[col.index],
                    f"Value ignored: {col.spec.item} is calculated by Capture, and the row fills no "
                    f"other item of {form.form_name} to calculate it from.",
                    "warning",
                )
        if found.problems or (not found.filled and found.status is None):
            return
        try:
            event_form = self._record_slot(row, place, form.form_name, instance)
        except CellProblem as p:
            self.problem(row, p.index, p.value, p.reason)
            return
        self.rows.append(self._row_plan(row, cells, place, event_form, form, instance, found))

    def _record_slot(self, row: int, place: RowPlace, form_name: str, instance: int) -> EventForm:
        """The event's form the row fills; a problem when the event does not collect it, the form
        does not repeat, or another row already fills the same record."""
        c, event, subject = self.columns, place.event, place.subject
        event_form = self.structure.event_forms.get((event.pk, form_name))
        if event_form is None:
            raise CellProblem(
                c.event.index,
                place.event_label,
                f"Form {form_name!r} is not collected at event {event.name!r} (arm {subject.arm_name}).",
            )
        if instance > 1 and not event_form.repeating:
            raise CellProblem(
                c.instance.index,
                instance,
                f"Form {form_name!r} does not repeat at {event.name!r}; its only instance is 1.",
            )
        key = (subject.pk, event.pk, form_name, instance)
        if key in self.seen:
            raise CellProblem(
                c.subject.index,
                subject.subject_id,
                f"Row {self.seen[key]} already fills {subject.subject_id} / {event.name} / {form_name} #{instance}; "
                "keep one of the two rows, or give each its own instance.",
            )
        self.seen[key] = row
        return event_form

    def _row_plan(
        self, row, cells, place: RowPlace, event_form, form: FormColumns, instance, found: FormCells
    ):
        return RowPlan(
            row=row,
            subject=place.subject,
            event=place.event,
            event_form=event_form,
            form_name=form.form_name,
            instance=instance,
            values=found.values,
            blanks=found.blanks,
            status=found.status,
            columns=self.places[form.form_name],
            cells=cells,
            clean=found.clean,
            errors=found.errors,
            fast=form.fast,
            calculated=found.calculated,
        )
