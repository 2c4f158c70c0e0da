"""Capture definitions out as a REDCap data dictionary (`write_dictionary`) and as the arms, events and
mapping CSVs of a longitudinal project (`write_schedule`). Both work from schema models, so the same
code exports a converted dictionary and any study loaded from YAML."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from capture.cells import neutralise

from ...schema import DataElement, FormFile, Item, ItemGroup, ScheduleFile, iter_items
from .. import Problem
from .rows import COLUMNS

REDCAP_CODE = re.compile(r"^-?[A-Za-z0-9_.]+$")


def _number(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _field_type(item: Item, element: DataElement) -> str:
    if item.calculation:
        return "calc"
    if item.query is not None:
        return "sql"
    widget = item.widget
    if widget in ("dropdown", "radio", "checkbox", "yesno", "truefalse", "slider", "descriptive", "file"):
        return widget
    if widget == "textarea":
        return "notes"
    if element.datatype == "file":
        return "file"
    if element.permissible_values:
        if element.datatype == "boolean" and [(p.code, p.meaning) for p in element.permissible_values] == [
            ("1", "Yes"),
            ("0", "No"),
        ]:
            return "yesno"
        return "dropdown"
    if element.datatype == "boolean":
        return "yesno"
    return "text"


def _validation(element: DataElement) -> str:
    if element.validation:
        return element.validation
    fmt = element.display_format or "ymd"
    if element.datatype == "date":
        return f"date_{fmt}"
    if element.datatype == "datetime":
        return f"datetime_{fmt}"
    if element.datatype == "time":
        return "time"
    if element.datatype == "integer":
        return "integer"
    if element.datatype == "decimal":
        places = element.decimal_places
        return f"number_{places}dp" if places and places <= 4 else "number"
    return ""


# A cell that is a plain number ("-1", "+2.5", "1e3") is data to a spreadsheet, not a formula.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _PeopleCsv:
    """csv.writer for the dictionary and schedule files people download and open in Excel: a text
    cell a spreadsheet would run as a formula (a label "=HYPERLINK(…)", "-2+3+cmd|…") gets a leading
    apostrophe (capture.cells.neutralise); numbers, also written as text ("-1"), stay as they are.
    Capture's own reader (`_as_typed`) takes the apostrophe off again, so a round trip is exact."""

    def __init__(self, out):
        self._writer = csv.writer(out, lineterminator="\n")

    @staticmethod
    def _cell(value):
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return value
        return neutralise(value)

    def writerow(self, row) -> None:
        self._writer.writerow([self._cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


@dataclass
class _Out:
    """The dictionary being written: its rows, the names taken and the problems found."""

    elements: dict[str, DataElement]
    rows: list[list[str]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    unitless: set[str] = field(default_factory=set)  # fields whose unit went into the field note

    def warn(self, message: str) -> None:
        self.problems.append(Problem(message, "warning"))


def write_dictionary(
    forms: list[FormFile], elements: dict[str, DataElement], record_id: str = ""
) -> tuple[str, list[Problem]]:
    """A REDCap data dictionary (CSV text, REDCap's UI column names) of `forms`, and the problems:
    what REDCap cannot hold (units, concept codes, repeating groups) said as warnings. `record_id` is
    the study's record id field (a REDCap-made study's own, e.g. study_id): the subject id, written first."""
    out = _Out(elements)
    name = record_id or "record_id"
    if forms and name not in {
        item.name or elements[item.element].name for _, _, item in iter_items(forms[0])
    }:
        out.rows.append([name, forms[0].instrument or forms[0].form, "", "text", "Record ID"] + [""] * 13)
        out.used.add(name)
        if not record_id:
            out.warn(
                "REDCap's first field is the record id: a field 'record_id' was added to the first instrument."
            )
    for form in forms:
        _form_rows(out, form)
    # REDCap wants each instrument's fields in one block; repeating groups come after their form.
    order: list[str] = []
    for row in out.rows:
        if row[1] not in order:
            order.append(row[1])
    out.rows.sort(key=lambda r: order.index(r[1]))
    text = io.StringIO()
    writer = _PeopleCsv(text)
    writer.writerow([ui for _, ui in COLUMNS])
    writer.writerows(out.rows)
    if out.unitless:
        out.warn(
            "a REDCap dictionary has no place for units, element ids or concept codes: units were added to "
            f"the field notes of {', '.join(sorted(out.unitless))}; ids and concept codes are in the ODM export."
        )
    return text.getvalue(), out.problems


def _form_rows(out: _Out, form: FormFile) -> None:
    """The rows of one form; a section's header goes on its first field."""
    instrument = form.instrument or form.form
    for section in form.sections:
        header = section.title if section.header else ""
        for entry in section.items:
            if isinstance(entry, ItemGroup):
                target = _group_instrument(out, form, instrument, entry)
                for item in entry.items:
                    out.rows.append(_row(out, item, target, header, entry if entry.matrix else None))
                    header = ""
            else:
                out.rows.append(_row(out, entry, instrument, header, None))
                header = ""


def _group_instrument(out: _Out, form: FormFile, instrument: str, group: ItemGroup) -> str:
    """The instrument a group's items go to: a repeating group becomes an instrument of its own."""
    if group.repeating:
        target = f"{instrument}_{group.group}"[:64]
        out.warn(
            f"form {form.form}: the repeating group {group.group!r} became the instrument "
            f"{target!r}; in REDCap, make it a repeating instrument."
        )
        return target
    if not group.matrix:
        out.warn(
            f"form {form.form}: group {group.group!r} has no REDCap equivalent; its items are plain fields."
        )
    return instrument


def _row(out: _Out, item: Item, instrument: str, header: str, matrix: ItemGroup | None) -> list[str]:
    """The dictionary row of one item (in a matrix group when `matrix` is given)."""
    element = out.elements[item.element]
    name = item.name or element.name
    if name in out.used:
        new = f"{name}_{instrument}"[:100]
        out.warn(f"field {name!r} appears in more than one form; in {instrument} it is named {new!r}.")
        name = new
    out.used.add(name)
    field_type = _field_type(item, element)
    if matrix is not None and field_type == "dropdown":
        field_type = "radio"  # REDCap's matrix rows are radio buttons or checkboxes only
    low = high = ""
    if field_type in ("text", "slider"):
        low, high = _number(element.min), _number(element.max)
    note = item.field_note or ""
    if element.unit and field_type != "descriptive":
        note = f"{note} ({element.unit})".strip() if note else element.unit
        out.unitless.add(name)
    return [
        name,
        instrument,
        header,
        field_type,
        item.label or element.question,
        _choices(out, item, element, field_type, name),
        note,
        _validation_cell(item, element, field_type),
        low,
        high,
        "y" if element.identifier else "",
        item.branching or "",
        "y" if item.required else "",
        item.alignment or "",
        item.question_number or "",
        matrix.group if matrix is not None else "",
        "y" if matrix is not None and matrix.ranking else "",
        item.annotation or "",
    ]


def _choices(out: _Out, item: Item, element: DataElement, field_type: str, name: str) -> str:
    """The "Choices, Calculations, OR Slider Labels" cell."""
    if field_type in ("dropdown", "radio", "checkbox"):
        pvs = element.permissible_values
        codes = [pv.code for pv in pvs]
        if not all(REDCAP_CODE.match(c) for c in codes):
            out.warn(
                f"field {name!r}: REDCap codes are letters, digits and underscores; the codes were numbered "
                + ", ".join(f"{n + 1}={c}" for n, c in enumerate(codes))
                + "."
            )
            codes = [str(n + 1) for n in range(len(pvs))]
        return " | ".join(f"{c}, {pv.meaning.replace('|', '/')}" for c, pv in zip(codes, pvs, strict=True))
    if field_type == "calc":
        return item.calculation or ""
    if field_type == "slider":
        return " | ".join(item.slider_labels)
    if field_type == "sql":
        return item.query or ""
    if element.ontology:
        return element.ontology
    return ""


def _validation_cell(item: Item, element: DataElement, field_type: str) -> str:
    """The "Text Validation Type OR Show Slider Number" cell."""
    if field_type == "text":
        return _validation(element)
    if field_type == "slider":
        return "number" if item.slider_number else ""
    if field_type == "file":
        return element.validation or ""
    return ""


def write_schedule(schedule: ScheduleFile, forms: dict[str, FormFile]) -> dict[str, str]:
    """REDCap's arms, events and instrument-event mapping CSVs (API column names) for a schedule."""
    arms, events, mapping = io.StringIO(), io.StringIO(), io.StringIO()
    arm_w, event_w, map_w = (_PeopleCsv(f) for f in (arms, events, mapping))
    arm_w.writerow(["arm_num", "name"])
    event_w.writerow(["event_name", "arm_num", "unique_event_name", "day_offset", "offset_min", "offset_max"])
    map_w.writerow(["arm_num", "unique_event_name", "form"])
    for n, arm in enumerate(schedule.arms, start=1):
        match = re.fullmatch(r"arm_(\d+)", arm.name)
        num = match.group(1) if match else str(n)
        arm_w.writerow([num, arm.title])
        for event in arm.events:
            unique = f"{event.name}_arm_{num}"
            event_w.writerow([event.title, num, unique, event.day, event.window_before, event.window_after])
            for entry in event.forms:
                form = forms[entry.form]
                map_w.writerow([num, unique, form.instrument or form.form])
    return {"arms": arms.getvalue(), "events": events.getvalue(), "mapping": mapping.getvalue()}
