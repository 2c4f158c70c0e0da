"""A REDCap data dictionary in: rows to elements and forms (`build_from_rows`, shared with the
project-XML reader), and `read_dictionary`, which adds the schedule."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from ...schema import DataElement, FormFile, Item, ItemGroup, Section
from .. import Conversion
from .fields import _check_references, _element_for, _flag
from .rows import FIELD_TYPES, MAX_ID, Row, _name_ok, decode, read_rows
from .schedule import _longitudinal, _schedule

# Project XML names two types differently from the dictionary.
_XML_TYPES = {"select": "dropdown", "textarea": "notes"}


def read_dictionary(
    data: bytes | str,
    *,
    project: str,
    source: str = "dictionary.csv",
    title: str = "",
    arms: bytes | str | None = None,
    events: bytes | str | None = None,
    mapping: bytes | str | None = None,
    repeating_forms: tuple[str, ...] | list[str] = (),
) -> Conversion:
    """Convert a REDCap data dictionary (and, for a longitudinal project, its arms, events and
    instrument-event mapping) into elements, forms and one schedule named `project`."""
    conversion = Conversion(source=source, kind="redcap", title=title or project)
    if not _name_ok(project):
        conversion.error(
            f"project key {project!r} must be lower case letters, digits and underscores, starting with a letter."
        )
        return conversion
    rows = read_rows(decode(data, conversion, source), conversion)
    build_from_rows(conversion, rows, project)
    if conversion.errors:
        return conversion
    if not conversion.forms:
        conversion.error(
            "the dictionary has a header but no fields. Fix: download the whole data dictionary "
            "(Project Setup → Data Dictionary), not only its first line.",
            line=2,
        )
        return conversion
    instruments = [f.instrument for f in conversion.forms]
    unknown = sorted(set(repeating_forms) - set(instruments))
    if unknown:
        conversion.error(
            f"repeating instrument(s) {', '.join(unknown)} are not in the dictionary. Fix: name instruments "
            f"of this dictionary ({', '.join(instruments)})."
        )
        return conversion
    if events is not None:
        schedule_rows = _longitudinal(conversion, arms, events, mapping, instruments)
        if conversion.errors:
            return conversion
    else:
        schedule_rows = None
    conversion.schedule = _schedule(conversion, project, schedule_rows, set(repeating_forms))
    conversion.cross_check()
    return conversion


@dataclass
class _Build:
    """What `build_from_rows` has gathered so far."""

    project: str
    seen: dict[str, int] = field(default_factory=dict)  # field name -> line
    expressions: list[tuple[Row, str, str]] = field(default_factory=list)
    forms: dict[str, dict] = field(default_factory=dict)  # instrument -> {"line", "sections": [...]}
    order: list[str] = field(default_factory=list)
    last_form: str | None = None
    record_id_alone: bool = False  # the record id field is the only field of its instrument
    carried_header: str = ""  # the record id row's section header, put on the next field


def build_from_rows(conversion: Conversion, rows: list[Row], project: str) -> None:
    """Fill `conversion` with the elements and forms of dictionary rows (shared with the ODM reader)."""
    build = _Build(project)
    if rows:
        first_form = rows[0].get("form_name").strip()
        build.record_id_alone = not any(r.get("form_name").strip() == first_form for r in rows[1:])
    for index, row in enumerate(rows):
        _add_row(conversion, build, index, row)
    _check_references(conversion, build.expressions, set(build.seen))
    for instrument in build.order:
        _add_form(conversion, project, instrument, build.forms[instrument])


def _add_row(conversion: Conversion, build: _Build, index: int, row: Row) -> None:
    """Convert one row and put its item in its instrument; a row with an error is left out."""
    name = _field_name(conversion, build, row)
    if name is None:
        return
    instrument = _instrument(conversion, build, row)
    if instrument is None:
        return
    field_type = _field_type(conversion, row)
    if field_type is None:
        return
    if index == 0:
        conversion.record_id_field = name
        if not build.record_id_alone:
            conversion.note(
                f"the first field, {name!r}, is REDCap's record id: it is the subject id, not an item.",
                line=row.line,
                where=f"field {name!r}",
            )
            build.carried_header = row.get("section_header").strip()
            return
        conversion.note(
            f"the first field, {name!r}, is REDCap's record id, the subject id. Its instrument {instrument!r} "
            "has no other field, and a Capture form needs one, so it is kept there as an item; REDCap "
            "surfaces (API, dictionary) never show it as a field.",
            line=row.line,
            where=f"field {name!r}",
        )
    converted = _validated(conversion, row, name, _element_for(row, build.project, field_type, conversion))
    if converted is None:
        return
    element, item = converted
    conversion.elements.append(element)
    if item.branching:
        build.expressions.append((row, "branching_logic", item.branching))
    if item.calculation:
        build.expressions.append((row, "select_choices_or_calculations", item.calculation))
    if not _open_form(conversion, build, row, instrument):
        return
    build.last_form = instrument
    header, build.carried_header = row.get("section_header").strip() or build.carried_header, ""
    _add_to_section(conversion, build.forms[instrument]["sections"], row, item, header)


def _field_name(conversion: Conversion, build: _Build, row: Row) -> str | None:
    """The row's field name, or None (and an error) when it is malformed, repeated or too long."""
    name = row.get("field_name").strip()
    if not _name_ok(name):
        conversion.error(
            f"field name {name!r} must be lower case letters, digits and underscores, starting with a "
            "letter (REDCap's own rule). Fix: rename the field.",
            **row.at("field_name"),
        )
        return None
    if name in build.seen:
        conversion.error(
            f"field {name!r} is defined again (first on line {build.seen[name]}). Fix: give it another name.",
            **row.at("field_name"),
        )
        return None
    build.seen[name] = row.line
    if len(name) > MAX_ID:
        conversion.error(
            f"field name {name!r} is longer than {MAX_ID} characters. Fix: shorten it.",
            **row.at("field_name"),
        )
        return None
    return name


def _instrument(conversion: Conversion, build: _Build, row: Row) -> str | None:
    """The row's instrument, or None (and an error) when it is malformed or its fields are not together."""
    instrument = row.get("form_name").strip()
    if not _name_ok(instrument):
        conversion.error(
            f"form name {instrument!r} must be lower case letters, digits and underscores. Fix: rename it.",
            **row.at("form_name"),
        )
        return None
    if instrument != build.last_form and instrument in build.forms:
        conversion.error(
            f"the fields of instrument {instrument!r} are not together (it started on line "
            f"{build.forms[instrument]['line']}). Fix: keep each instrument's fields in one block, as REDCap does.",
            **row.at("form_name"),
        )
        return None
    return instrument


def _field_type(conversion: Conversion, row: Row) -> str | None:
    field_type = row.get("field_type").strip().lower()
    field_type = _XML_TYPES.get(field_type, field_type)
    if field_type not in FIELD_TYPES:
        conversion.error(
            f"field type {field_type!r} is not a REDCap field type. Fix: use one of {', '.join(FIELD_TYPES)}.",
            **row.at("field_type"),
        )
        return None
    return field_type


def _validated(
    conversion: Conversion, row: Row, name: str, converted: tuple[dict, dict] | None
) -> tuple[DataElement, Item] | None:
    """The schema models of (element fields, item fields); None (and errors) when they do not validate."""
    if converted is None:
        return None
    element_fields, item_fields = converted
    try:
        element = DataElement.model_validate(element_fields)
        item = Item.model_validate({"element": element.ref, **item_fields})
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}. Fix: correct this field.",
                line=row.line,
                where=f"field {name!r}",
            )
        return None
    return element, item


def _open_form(conversion: Conversion, build: _Build, row: Row, instrument: str) -> bool:
    """Start the instrument's form at its first field; False (and an error) when its name is too long."""
    if instrument in build.forms:
        return True
    form_name = f"{build.project}_{instrument}"
    if len(form_name) > MAX_ID:
        conversion.error(
            f"the form name {form_name} is longer than {MAX_ID} characters. Fix: use a shorter project key.",
            **row.at("form_name"),
        )
        return False
    build.forms[instrument] = {"line": row.line, "sections": []}
    build.order.append(instrument)
    return True


def _add_to_section(conversion: Conversion, sections: list[dict], row: Row, item: Item, header: str) -> None:
    """Put `item` in the current section (a section header starts a new one), in its matrix if it has one."""
    if header or not sections:
        sections.append({"title": header, "header": bool(header), "entries": []})
    entries = sections[-1]["entries"]
    matrix = row.get("matrix_group_name").strip()
    if not matrix:
        entries.append(item)
        return
    if not _name_ok(matrix):
        conversion.error(
            f"matrix group name {matrix!r} must be lower case letters, digits and underscores.",
            **row.at("matrix_group_name"),
        )
        return
    ranking = _flag(row, "matrix_ranking", conversion)
    last = entries[-1] if entries else None
    if isinstance(last, dict) and last.get("group") == matrix:
        last["items"].append(item)
    else:
        entries.append({"group": matrix, "matrix": True, "ranking": ranking, "items": [item]})


def _add_form(conversion: Conversion, project: str, instrument: str, form: dict) -> None:
    """The FormFile of one instrument's gathered sections. A section whose rows all had errors is
    empty; it is left out (those rows are already reported), and so is a form left with no section."""
    title = instrument.replace("_", " ").capitalize()
    gathered = [s for s in form["sections"] if s["entries"]]
    if not gathered:
        return
    try:
        sections = [
            Section(
                title=section["title"] or title,
                header=section["header"],
                items=[ItemGroup.model_validate(e) if isinstance(e, dict) else e for e in section["entries"]],
            )
            for section in gathered
        ]
        conversion.forms.append(
            FormFile(
                form=f"{project}_{instrument}",
                version="1.0",
                title=title,
                instrument=instrument,
                sections=sections,
            )
        )
    except ValidationError as exc:
        conversion.error(f"instrument {instrument!r}: {exc}", line=form["line"])
