"""The columns of a sheet as objects that resolve, clean and assign (pretix's import design).

- resolve: `resolve_columns` checks the mapping against the sheet's headers and the study's forms and
  gives one object per column — the subject id, the event, the repeat instance and instrument, each
  form's status, each item (a field, a repeating group's cell, a checkbox code) and the columns the
  mapping leaves out — with every problem of the mapping, not only the first.
- clean: a column turns its cell of a row into what it means (a subject, an event, a value), or says
  why it cannot: `CellProblem` for the row's columns, `mapping.CellError` for an item's cell.
  `FormColumns.clean` cleans every cell a form takes from a row and collects all their problems.
- assign: an item column puts its value where the record keeps it (`assign`).

plan.py walks the rows with these objects; the record rules themselves are applied afterwards by the
form's validator (compare.py), as on data entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from . import readers
from .fastpath import FastForm
from .mapping import CellError, ColumnSpec, ItemColumn, Mapping, redcap_event_name, unit_factor
from .report import Problem, cell_text
from .structure import StudyForms, SubjectRef

STATUS_CODES = ("0", "1", "2")  # REDCap's <form>_complete: incomplete, unverified, complete


class CellProblem(Exception):  # noqa: N818 - a finding about a cell, raised to end the row's walk
    """A cell of a row that does not say what its column needs: the row fills no record."""

    def __init__(self, index: int | None, value, reason: str):
        super().__init__(reason)
        self.index = index  # the cell's column; None when no column holds it (a fixed event)
        self.value = value
        self.reason = reason


# ------------------------------------------------------------------------------ the row's columns


class CellProblems(CellProblem):  # noqa: N818 - several findings about one row's cells
    """More than one cell of a row's place is wrong (a new subject's site and enrolment date)."""

    def __init__(self, problems: list[CellProblem]):
        first = problems[0]
        super().__init__(first.index, first.value, first.reason)
        self.all = problems


@dataclass
class Column:
    """A column of the sheet; `index` is None when the mapping names no column for it."""

    header: str
    index: int | None

    @property
    def letter(self) -> str:
        return readers.column_letter(self.index) if self.index is not None else ""

    def text(self, cells: list) -> str:
        return cell_text(cells[self.index]) if self.index is not None else ""

    def cell(self, cells: list):
        """The row's cell in this column, which the sheet has (resolve refuses a mapping without it)."""
        assert self.index is not None
        return cells[self.index]


class SubjectKeys(Protocol):
    """The sheet's own keys of subjects an earlier import enrolled (enrol.Crosswalk)."""

    def get(self, key: str) -> SubjectRef | None: ...


class NewSubjects(Protocol):
    """The subjects the import would enrol (enrol.Enrolment, which imports this module)."""

    def subject(self, key: str, cells: list, row: int) -> SubjectRef: ...


@dataclass
class SubjectColumn(Column):
    """The subject id: a subject of the study at a site the importer can see."""

    study_name: str = ""
    subjects: dict[str, SubjectRef] = field(default_factory=dict)  # set by `load`, once resolved
    # The sheet's own keys (an MRN, a TCIA code) of subjects enrolled by an earlier import of a
    # study whose ids are generated: key → subject, read from the crosswalk (enrol.py).
    keys: SubjectKeys | None = None
    enrolment: NewSubjects | None = None  # when the import enrols subjects not yet in the study

    def load(
        self,
        subjects: dict[str, SubjectRef],
        keys: SubjectKeys | None = None,
        enrolment: NewSubjects | None = None,
    ) -> None:
        self.subjects = subjects
        self.keys = keys
        self.enrolment = enrolment

    def clean(self, cells: list, row: int = 0) -> SubjectRef:
        raw = self.cell(cells)
        subject_id = cell_text(raw)
        if not subject_id:
            raise CellProblem(self.index, raw, "The subject id is blank; fill it in or delete the row.")
        subject = self.subjects.get(subject_id)
        if subject is None and self.keys is not None:
            try:
                subject = self.keys.get(subject_id)
            except CellProblem as problem:
                raise CellProblem(self.index, raw, problem.reason) from None
        if subject is None and self.enrolment is not None:
            subject = self.enrolment.subject(subject_id, cells, row)
        if subject is None:
            raise CellProblem(
                self.index,
                raw,
                f"No subject {subject_id!r} in {self.study_name} at a site you can see. Enrol the subject "
                "first, or correct the id.",
            )
        return subject


@dataclass
class EventColumn(Column):
    """The column naming each row's event (REDCap's `enrollment_arm_1` is the event `enrollment`)."""

    structure: StudyForms
    event_values: dict[str, str] = field(default_factory=dict)  # legacy label → event name

    def label(self, cells: list) -> tuple[str, str]:
        """(the cell's text, the event name it stands for)."""
        label = self.text(cells)
        return label, redcap_event_name(label, self.event_values) if label else ""

    def clean(self, cells: list, subject: SubjectRef) -> tuple[str, object]:
        """(the label as written, the subject's event)."""
        label, name = self.label(cells)
        event = self.structure.events.get((subject.arm_id, name))
        if event is None:
            arm_events = [n for (arm, n) in self.structure.events if arm == subject.arm_id]
            raise CellProblem(
                self.index,
                label,
                f"{subject.subject_id} (arm {subject.arm_name}) has no event {name!r}; its events: "
                f"{', '.join(arm_events)}. Map the event label to one of them.",
            )
        return label, event

    def check_any_arm(self, cells: list) -> None:
        """Without the row's subject: a problem when no arm of the study has the event."""
        label, name = self.label(cells)
        names = self.structure.event_names()
        if name not in names:
            raise CellProblem(
                self.index,
                label,
                f"The study has no event {name!r}; its events: {', '.join(names)}. Map the event label "
                "to one of them.",
            )


@dataclass
class FixedEvent(EventColumn):
    """No event column: every row goes to the mapping's one event."""

    event: str = ""

    def label(self, cells: list) -> tuple[str, str]:
        return self.event, self.event


@dataclass
class InstanceColumn(Column):
    """The instance of a repeating form (REDCap's redcap_repeat_instance); 1 without the column."""

    def clean(self, cells: list) -> int:
        text = self.text(cells)
        if not text:
            return 1
        if not text.isdigit() or int(text) < 1:
            raise CellProblem(self.index, self.cell(cells), "The instance is a whole number from 1.")
        return int(text)


@dataclass
class RepeatFormColumn(Column):
    """REDCap's redcap_repeat_instrument: a row naming a form fills that form only, at its instance;
    the other rows fill every form at instance 1. Without the column, every row fills every form."""

    def instance_for(self, form_name: str, repeat_form: str, instance: int) -> int | None:
        """The instance of `form_name` the row fills, or None when it fills none."""
        if self.index is None:
            return instance
        if repeat_form and repeat_form != form_name:
            return None
        return instance if repeat_form == form_name else 1


@dataclass
class StatusColumn(Column):
    """A form's status as REDCap writes it (<form>_complete: 0, 1 or 2); blank keeps the default."""

    form: str = ""

    def clean(self, cells: list) -> int | None:
        text = self.text(cells)
        if not text:
            return None
        if text not in STATUS_CODES:
            raise CellProblem(self.index, self.cell(cells), "The form status is 0, 1 or 2 (REDCap's codes).")
        return int(text)


@dataclass
class IgnoredColumn(Column):
    """A header the mapping does not use: its cells are not read (a link to another workbook in
    it is only a warning)."""


# ----------------------------------------------------------------------------- the items' columns


class FieldColumn(ItemColumn):
    """An item of its own: the cell's value is the field's."""


class GroupItemColumn(ItemColumn):
    """An item of a repeating group: the cell fills one row (`spec.row`) of the group."""

    def assign(self, value, values: dict) -> None:
        values.setdefault(self.group, {}).setdefault(self.spec.row, {})[self.spec.item] = value


class CheckboxCodeColumn(ItemColumn):
    """A REDCap-style checkbox column ("race___2"): whether one code of the item is ticked; the
    codes of the item's columns add up."""

    def assign(self, value, values: dict) -> None:
        name = self.spec.item
        values[name] = sorted(set(values.get(name, [])) | set(value))


@dataclass
class FormCells:
    """What a row's cells give one form: its values (or, on the fast path, its fields already
    cleaned and the validator's errors), its status, and every cell that could not be cleaned."""

    values: dict = field(default_factory=dict)
    blanks: set = field(default_factory=set)
    status: int | None = None
    clean: dict | None = None
    errors: dict | None = None
    problems: list[CellProblem] = field(default_factory=list)
    filled: bool = False  # a cell of the form holds a value (or an error)
    # Cells of columns mapped to calculated items: (column, the cell's value), compared with the
    # value Capture calculates once the record is validated (compare.py); never imported.
    calculated: list[tuple] = field(default_factory=list)
    notes: list[CellProblem] = field(default_factory=list)  # warnings: a calculated cell ignored


@dataclass
class FormColumns:
    """The columns one form takes its values from, with its status column if any."""

    form_name: str
    items: list[ItemColumn]
    status: StatusColumn | None = None
    fast: FastForm | None = None  # set by the plan when the form can take the fast path
    calculated: list[ItemColumn] = field(default_factory=list)  # mapped to items Capture calculates

    @property
    def by_place(self) -> dict[str, ItemColumn]:
        """Where a value goes ("item" or "group[row].item") → the column it came from."""
        places: dict[str, ItemColumn] = {}
        for col in self.items:
            places.setdefault(
                f"{col.group}[{col.spec.row}].{col.spec.item}" if col.group else col.spec.item, col
            )
        return places

    def clean(self, cells: list, *, overwrite: bool) -> FormCells:
        """Clean every cell of the form in the row; a bad cell does not stop the others."""
        found = FormCells()
        if self.fast is not None:
            found.clean, found.errors, bad = self.fast.clean(cells)
            found.problems = [CellProblem(*cell) for cell in bad]
            found.filled = bool(found.clean or found.errors)
        else:
            self._clean_values(cells, found, overwrite)
        if self.status is not None:
            try:
                found.status = self.status.clean(cells)
            except CellProblem as problem:
                found.problems.append(problem)
        self._clean_calculated(cells, found)
        return found

    def _clean_calculated(self, cells: list, found: FormCells) -> None:
        """A calculated item's cell is not imported: kept to compare with the calculated value, or
        reported as ignored when it does not even read as a value of the item."""
        for col in self.calculated:
            raw = cells[col.index]
            try:
                value = col.clean(raw)
            except CellError as exc:
                found.notes.append(
                    CellProblem(
                        col.index, raw, f"Value ignored: {col.spec.item} is calculated by Capture ({exc})."
                    )
                )
                continue
            if value is not None:
                found.calculated.append((col, value))

    def _clean_values(self, cells: list, found: FormCells, overwrite: bool) -> None:
        for col in self.items:
            raw = cells[col.index]
            try:
                value = col.clean(raw)
            except CellError as exc:
                found.problems.append(CellProblem(col.index, raw, f"{col.spec.item}: {exc}"))
                continue
            if value is None:
                if overwrite:  # only overwrite mode needs to know the blanks
                    found.blanks.add((col.group, col.spec.row, col.spec.item))
                continue
            found.filled = True
            col.assign(value, found.values)


# ------------------------------------------------------------------------------------- resolve


@dataclass
class SheetColumns:
    """Every column of the sheet as the mapping resolves it."""

    subject: SubjectColumn
    event: EventColumn
    instance: InstanceColumn
    repeat_form: RepeatFormColumn
    forms: dict[str, FormColumns]  # form name → its columns, in the order the mapping names them
    statuses: dict[str, StatusColumn]
    ignored: list[IgnoredColumn]


def imported_headers(mapping: Mapping) -> set[str]:
    """The headers the mapping reads a value from."""
    return {
        mapping.subject_column,
        mapping.event_column,
        mapping.instance_column,
        mapping.repeat_form_column,
        mapping.site_column if mapping.enrol else "",
        mapping.enrolment_date_column if mapping.enrol else "",
        *mapping.status_columns.values(),
        *(spec.column for spec in mapping.columns),
    }


def resolve_columns(
    table: readers.Table, mapping: Mapping, structure: StudyForms, missing_codes: set[str], study_name: str
) -> tuple[SheetColumns, list[Problem]]:
    """The sheet's columns as the mapping says, and every problem of the mapping (nothing can be
    imported while there is one)."""
    return _Resolver(table, mapping, structure, missing_codes).resolve(study_name)


def _headers(table: readers.Table) -> str:
    shown = ", ".join(repr(h) for h in table.headers[:12] if h)
    return shown + (" …" if len(table.headers) > 12 else "")


class _Resolver:
    def __init__(self, table: readers.Table, mapping: Mapping, structure: StudyForms, missing_codes):
        self.table = table
        self.mapping = mapping
        self.structure = structure
        self.missing_codes = missing_codes
        self.problems: list[Problem] = []
        self.duplicated = {h.rsplit(" (", 1)[0] for h in table.headers if re.search(r" \([A-Z]+\)$", h)}

    def error(self, reason: str, header: str = "", severity: str = "error") -> None:
        index = self.table.column_index(header) if header else None
        letter = readers.column_letter(index) if index is not None else ""
        self.problems.append(Problem(None, letter, header, "", reason, self.table.sheet, severity))

    def index(self, header: str, what: str) -> int | None:
        if not header:
            return None
        index = self.table.column_index(header)
        if index is None:
            self.error(
                f"The {what} column {header!r} is not in the sheet (its headers: {_headers(self.table)})."
            )
        return index

    def resolve(self, study_name: str) -> tuple[SheetColumns, list[Problem]]:
        m = self.mapping
        subject = SubjectColumn(m.subject_column, self.index(m.subject_column, "subject id"), study_name)
        event = self._event()
        instance = InstanceColumn(m.instance_column, self.index(m.instance_column, "instance"))
        repeat = RepeatFormColumn(m.repeat_form_column, self.index(m.repeat_form_column, "repeating form"))
        statuses = {
            form: StatusColumn(header, self.index(header, f"{form} status"), form)
            for form, header in m.status_columns.items()
        }
        self._check_event_and_codes()
        forms: dict[str, FormColumns] = {}
        for spec in m.columns:
            col = self._item(spec)
            if col is None:
                continue
            if spec.form not in forms:
                forms[spec.form] = FormColumns(spec.form, [], statuses.get(spec.form))
            calculation = self.structure.items[spec.form][spec.item].get("calculation")
            if calculation:
                forms[spec.form].calculated.append(col)
                self.error(
                    f"Column {spec.column!r} maps to {spec.form}.{spec.item}, which Capture calculates "
                    f"({calculation}): its values are not imported. A cell that differs from the "
                    "calculated value, or that Capture cannot check, is named in the report.",
                    spec.column,
                    severity="warning",
                )
            else:
                forms[spec.form].items.append(col)
        if not forms and not statuses:
            self.error("No column is mapped to a form item; map at least one.")
        used = imported_headers(m)
        ignored = [IgnoredColumn(h, i) for i, h in enumerate(self.table.headers) if h not in used]
        return SheetColumns(subject, event, instance, repeat, forms, statuses, ignored), self.problems

    def _event(self) -> EventColumn:
        m = self.mapping
        index = self.index(m.event_column, "event")
        if not m.event_column:
            return FixedEvent("", None, self.structure, m.event_values, m.event)
        return EventColumn(m.event_column, index, self.structure, m.event_values)

    def _check_event_and_codes(self) -> None:
        m, structure = self.mapping, self.structure
        if m.event and m.event not in structure.event_names():
            self.error(
                f"There is no event {m.event!r}; the study's events: {', '.join(structure.event_names())}."
            )
        for form in m.status_columns:
            if form not in structure.forms:
                self.error(f"Status column for {form!r}: the study has no such form.")
        for legacy, code in m.missing_values.items():
            if code not in self.missing_codes:
                self.error(
                    f"The missing value {legacy!r} maps to {code!r}, which is not one of the study's missing-data "
                    f"codes ({', '.join(sorted(self.missing_codes))})."
                )

    def _item(self, spec: ColumnSpec) -> ItemColumn | None:
        """The column of one mapped item, or None (and the problem) when it cannot be read."""
        item = self._find_item(spec)
        if item is None:
            return None
        index = self.table.column_index(spec.column)
        if index is None:
            self.error(
                f"The mapped column {spec.column!r} is not in the sheet (its headers: {_headers(self.table)})."
            )
            return None
        if spec.column in self.duplicated:
            self.error(
                f"More than one column is headed {spec.column!r}; rename them in the file so each says what it holds.",
                spec.column,
            )
            return None
        element = self.structure.elements[item["element"]]
        codes = {pv.code: pv.meaning for pv in element.permissible_values.all()}
        self._check_value_map(spec, codes)
        factor = self._unit_factor(spec, element)
        if factor is False:
            return None
        group = item.get("group") if item.get("repeating") else None
        kind = CheckboxCodeColumn if spec.code else GroupItemColumn if group else FieldColumn
        return kind(
            spec=spec,
            index=index,
            letter=readers.column_letter(index),
            datatype=element.datatype,
            multiple=item.get("widget") == "checkbox",
            codes=codes,
            group=group,
            date_format=spec.date_format or self.mapping.date_format,
            pivot=self.mapping.pivot(),
            missing=self.mapping.missing_values,
            missing_codes=self.missing_codes,
            factor=factor if factor != 1 else None,
            places=element.decimal_places,
        )

    def _find_item(self, spec: ColumnSpec) -> dict | None:
        items = self.structure.items.get(spec.form)
        if items is None:
            self.error(
                f"Column {spec.column!r} maps to form {spec.form!r}, which this study does not use.",
                spec.column,
            )
            return None
        item = items.get(spec.item)
        if item is None:
            self.error(
                f"Column {spec.column!r} maps to {spec.form}.{spec.item}, but form {spec.form!r} has no item "
                f"{spec.item!r} (its items: {', '.join(items)}).",
                spec.column,
            )
        return item

    def _check_value_map(self, spec: ColumnSpec, codes: dict[str, str]) -> None:
        unknown = sorted(
            {c for c in spec.values.values() if codes and c not in codes and c not in self.missing_codes}
        )
        if unknown:
            self.error(
                f"The value map of {spec.column!r} gives {', '.join(map(repr, unknown))}, not among the codes of "
                f"{spec.item} ({', '.join(codes)}).",
                spec.column,
            )

    def _unit_factor(self, spec: ColumnSpec, element):
        """The factor from the column's unit to the element's; None without a unit; False (and the
        problem) when Capture knows no conversion."""
        if not spec.unit:
            return None
        factor = unit_factor(spec.unit, element.unit) if element.unit else None
        if factor is None or element.datatype not in ("integer", "decimal"):
            self.error(
                f"Column {spec.column!r} is in {spec.unit}, but {spec.item} is "
                + (f"in {element.unit}" if element.unit else "without a unit")
                + "; Capture knows no conversion. Convert the column in the file, or remove its unit.",
                spec.column,
            )
            return False
        return factor
