"""A REDCap project XML (ODM 1.3.1 with `redcap:` attributes) in: its fields become dictionary rows,
converted exactly as a data dictionary is (capture.definitions.converters.redcap), events and arms
included."""

from __future__ import annotations

from .. import Conversion
from ..redcap import Row, build_from_rows, event_key
from ..redcap.schedule import _schedule as _redcap_schedule
from .common import REDCAP_NS, _find, _findall, _text_of, _text_plain


def _rc(node, name: str) -> str:
    return node.get(f"{{{REDCAP_NS}}}{name}", "") if node is not None else ""


def _read_redcap(conversion: Conversion, mdv, project: str) -> None:
    """A REDCap project XML: rebuild its dictionary rows from the redcap: attributes, then convert them."""
    item_defs = {n.get("OID"): n for n in _findall(mdv, "ItemDef")}
    groups = {n.get("OID"): n for n in _findall(mdv, "ItemGroupDef")}
    code_lists = {n.get("OID"): n for n in _findall(mdv, "CodeList")}
    columns: dict[str, int] = {}  # XML has lines, not columns: problems name the dictionary column
    rows: list[Row] = []
    repeating: set[str] = set()
    seen: set[str] = set()
    for form in _findall(mdv, "FormDef"):
        instrument = _rc(form, "FormName") or form.get("OID", "").removeprefix("Form.")
        if form.get("Repeating") == "Yes":
            repeating.add(instrument)
        for group_ref in _findall(form, "ItemGroupRef"):
            for item_ref in _findall(groups.get(group_ref.get("ItemGroupOID")), "ItemRef"):
                item = item_defs.get(item_ref.get("ItemOID"))
                if item is None:
                    conversion.error(
                        f"ItemRef {item_ref.get('ItemOID')!r} names no ItemDef.", line=item_ref.sourceline
                    )
                    continue
                variable = _rc(item, "Variable") or item.get("Name", "")
                if variable in seen:
                    continue  # the other options of a checkbox (gym___1, gym___2, ...)
                seen.add(variable)
                if variable == f"{instrument}_complete":
                    continue  # REDCap's form status: Capture keeps it as each record's status
                rows.append(
                    Row(item.sourceline or 0, _redcap_row(item, instrument, variable, code_lists), columns)
                )
    if not rows:
        conversion.error("the project XML has no fields. Fix: export it with its metadata (Project XML).")
        return
    build_from_rows(conversion, rows, project)
    if conversion.errors:
        return
    plan = _redcap_plan(conversion, mdv)
    conversion.schedule = _redcap_schedule(conversion, project, plan, repeating)


def _redcap_row(item, instrument: str, variable: str, code_lists: dict) -> dict[str, str]:
    field_type = _rc(item, "FieldType")
    choices = ""
    code_list = (
        code_lists.get(_find(item, "CodeListRef").get("CodeListOID"))
        if _find(item, "CodeListRef") is not None
        else None
    )
    if field_type == "checkbox" and code_list is not None:
        choices = _rc(code_list, "CheckboxChoices")
    elif field_type in ("select", "radio", "dropdown") and code_list is not None:
        choices = " | ".join(
            f"{ci.get('CodedValue')}, {_text_of(ci, 'Decode')}" for ci in _findall(code_list, "CodeListItem")
        )
    elif field_type == "calc":
        choices = _rc(item, "Calculation")
    elif field_type == "slider":
        choices = _rc(item, "SliderLabels")
    elif field_type == "sql":
        choices = _rc(item, "SQL") or _rc(item, "Calculation")
    low = high = ""
    for check in _findall(item, "RangeCheck"):
        value = _text_plain(_find(check, "CheckValue"))
        if check.get("Comparator") in ("GE", "GT"):
            low = value
        elif check.get("Comparator") in ("LE", "LT"):
            high = value
    validation = _rc(item, "TextValidationType")
    if field_type == "slider" and _rc(item, "ShowSliderNumber") in ("1", "number"):
        validation = "number"
    return {
        "field_name": variable,
        "form_name": instrument,
        "section_header": _rc(item, "SectionHeader"),
        "field_type": field_type,
        "field_label": _text_of(item, "Question"),
        "select_choices_or_calculations": choices,
        "field_note": _rc(item, "FieldNote"),
        "text_validation_type_or_show_slider_number": validation,
        "text_validation_min": low,
        "text_validation_max": high,
        "identifier": _rc(item, "Identifier"),
        "branching_logic": _rc(item, "BranchingLogic"),
        "required_field": _rc(item, "RequiredField"),
        "custom_alignment": _rc(item, "CustomAlignment"),
        "question_number": _rc(item, "QuestionNumber"),
        "matrix_group_name": _rc(item, "MatrixGroupName"),
        "matrix_ranking": _rc(item, "MatrixRanking"),
        "field_annotation": _rc(item, "FieldAnnotation"),
    }


def _redcap_plan(conversion: Conversion, mdv) -> dict | None:
    events = _findall(mdv, "StudyEventDef")
    if not events:
        return None
    instruments = {f.instrument for f in conversion.forms if f.instrument}
    plan: dict = {}
    for event in events:
        arm_num = _rc(event, "ArmNum") or "1"
        unique = _rc(event, "UniqueEventName") or event.get("OID", "").removeprefix("Event.")
        arm = plan.setdefault(arm_num, {"title": _rc(event, "ArmName") or f"Arm {arm_num}", "events": {}})

        def whole(text: str) -> int:
            try:
                return int(float(text or 0))
            except ValueError:
                return 0

        arm["events"][unique] = {
            "name": event_key(unique, arm_num),
            "title": _rc(event, "EventName") or event.get("Name", unique),
            "day": whole(_rc(event, "DayOffset")),
            "window_before": whole(_rc(event, "OffsetMin")),
            "window_after": whole(_rc(event, "OffsetMax")),
            "forms": _event_instruments(conversion, event, unique, instruments),
            "line": event.sourceline,
        }
    return plan


def _event_instruments(conversion: Conversion, event, unique: str, instruments: set[str]) -> list[str]:
    """The instruments of an event's FormRefs; one the project has no fields for is an error."""
    found = []
    for ref in _findall(event, "FormRef"):
        instrument = _rc(ref, "FormName") or ref.get("FormOID", "").removeprefix("Form.")
        if instrument in instruments:
            found.append(instrument)
        else:
            conversion.error(
                f"StudyEventDef {event.get('OID')!r} (event {unique!r}): FormRef {ref.get('FormOID')!r} names "
                f"instrument {instrument!r}, which has no fields in the file. Fix: export the project XML "
                "with all its instruments, or remove the FormRef.",
                line=ref.sourceline,
            )
    return found
