"""One dictionary row to the fields of a DataElement and of its Item: the rules per REDCap field
type, validations and limits, expressions (branching logic and calculations) and flags."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ... import expressions as language
from .. import Conversion
from .rows import (
    CURLY,
    OLD_VALIDATION_NAMES,
    TEXT_VALIDATIONS,
    VALIDATIONS,
    YES,
    Row,
    element_id,
    parse_choices,
)

CHOICES = "select_choices_or_calculations"
VALIDATION = "text_validation_type_or_show_slider_number"


def _flag(row: Row, key: str, conversion: Conversion) -> bool:
    value = row.get(key).strip().lower()
    if value in YES:
        return True
    if value not in ("", "n", "no", "0"):
        conversion.error(
            f"{value!r} is not y or empty. Fix: write y, or leave the cell empty.", **row.at(key)
        )
    return False


def _plain(label: str) -> str:
    text = re.sub(r"<[^>]+>", " ", label)
    return " ".join(text.split())[:255]


def _bound(row: Row, key: str, datatype: str, conversion: Conversion):
    raw = row.get(key).strip()
    if not raw:
        return None
    if raw.lower() in ("today", "now"):
        conversion.warn(
            f"the limit {raw!r} moves with the calendar; Capture's limits are fixed, so this one is not "
            "checked. Fix: enter a fixed date, or keep the check in branching logic.",
            **row.at(key),
        )
        return None
    if datatype in ("integer", "decimal"):
        try:
            number = float(raw.replace(",", ".")) if datatype == "decimal" else float(raw)
        except ValueError:
            conversion.error(
                f"{raw!r} is not a number. Fix: enter a number or leave it empty.", **row.at(key)
            )
            return None
        return number
    if datatype in ("date", "datetime"):
        from datetime import datetime

        for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y", "%m-%d-%Y"):
            try:
                parsed = datetime.strptime(raw, fmt)  # noqa: DTZ007 - a calendar limit, no time zone
            except ValueError:
                continue
            return parsed.date().isoformat() if datatype == "date" else parsed.isoformat(sep=" ")
        conversion.error(f"{raw!r} is not a date. Fix: write it as YYYY-MM-DD.", **row.at(key))
        return None
    if datatype == "time":
        return raw
    conversion.warn(
        f"a limit ({raw!r}) on a field without number, date or time validation is not checked by Capture "
        "(nor by REDCap). It is not kept. Fix: remove it, or add a validation type.",
        **row.at(key),
    )
    return None


def _expression(row: Row, key: str, conversion: Conversion) -> str | None:
    text = row.get(key).strip()
    if not text:
        return None
    straight = text.translate(CURLY)
    if straight != text:
        conversion.warn("curly quotes in the expression were read as straight quotes.", **row.at(key))
    try:
        language.parse(straight)
    except language.ExpressionTooDeepError:
        # Kept as written it would fail again on every form that evaluates it: refuse it here.
        conversion.error(
            f"the expression ({len(straight)} characters) is nested too deeply for Capture to read. "
            "Fix: write it with fewer nested brackets or 'not's, or split it over calculated fields.",
            **row.at(key),
        )
        return None
    except language.ExpressionError as exc:
        conversion.warn(
            f"Capture's expression language cannot read {straight!r}: {exc}. It is kept as written; "
            "Fix: rewrite it in REDCap's syntax, or check it in the preview.",
            **row.at(key),
        )
    return straight


def _check_references(conversion: Conversion, expressions, fields: set[str]) -> None:
    """Warn about expressions that read fields the dictionary does not have (they are always blank)."""
    for row, key, text in expressions:
        try:
            used = language.fields_used(text)
        except language.ExpressionError:
            continue  # already reported by _expression
        missing = sorted(used - fields)
        if missing:
            conversion.warn(
                f"the expression reads {', '.join(missing)}, which the dictionary does not define; it will always "
                "see blank there. Fix: correct the field name, or add the field.",
                **row.at(key),
            )


@dataclass
class _Draft:
    """One row on its way to (element fields, item fields); the rules below fill it in."""

    row: Row
    field_type: str
    validation: str
    choices: str
    conversion: Conversion
    element: dict
    item: dict = field(default_factory=dict)

    def error(self, message: str, key: str) -> None:
        self.conversion.error(message, **self.row.at(key))

    def warn(self, message: str, key: str) -> None:
        self.conversion.warn(message, **self.row.at(key))


def _element_for(row: Row, project: str, field_type: str, conversion: Conversion) -> tuple[dict, dict] | None:
    """(element fields, item fields) for one row, or None when the row cannot be converted."""
    name = row.get("field_name").strip()
    label = row.get("field_label").strip()
    validation = row.get(VALIDATION).strip()
    element: dict = {
        "public_id": element_id(project, name),
        "version": "1.0",
        "name": name,
        "long_name": _plain(label) or name,
        "question": label,
        "datatype": "text",
        "identifier": _flag(row, "identifier", conversion),
        "source": f"REDCap data dictionary of project {project}",
    }
    draft = _Draft(
        row=row,
        field_type=field_type,
        validation=OLD_VALIDATION_NAMES.get(validation, validation),
        choices=row.get(CHOICES).strip(),
        conversion=conversion,
        element=element,
    )
    rule = _TYPE_RULES.get(field_type)
    if rule is not None and not rule(draft):
        return None
    _text_choices(draft)
    _validation(draft)
    _limits(draft)
    _item_extras(draft)
    return draft.element, draft.item


# ---------------------------------------------------------------------------- rules per field type
# Each fills the draft for its type and returns False when the row cannot be converted.


def _choice_field(draft: _Draft) -> bool:
    try:
        choices = parse_choices(draft.choices)
    except ValueError as exc:
        draft.error(str(exc) + ".", CHOICES)
        return False
    draft.element["permissible_values"] = [{"code": c, "meaning": m} for c, m in choices]
    draft.item["widget"] = draft.field_type
    return True


def _boolean_field(draft: _Draft) -> bool:
    yes, no = ("Yes", "No") if draft.field_type == "yesno" else ("True", "False")
    draft.element["datatype"] = "boolean"
    draft.element["permissible_values"] = [{"code": "1", "meaning": yes}, {"code": "0", "meaning": no}]
    draft.item["widget"] = draft.field_type
    return True


def _calc_field(draft: _Draft) -> bool:
    if not draft.choices:
        draft.error("a calculated field needs its calculation. Fix: write it in the choices column.", CHOICES)
        return False
    draft.element["datatype"] = "decimal"
    draft.item["calculation"] = _expression(draft.row, CHOICES, draft.conversion)
    return True


def _file_field(draft: _Draft) -> bool:
    draft.element["datatype"] = "file"
    draft.item["widget"] = "file"
    if draft.validation:
        draft.element["validation"] = draft.validation  # "signature"
    return True


def _slider_field(draft: _Draft) -> bool:
    draft.element["datatype"] = "integer"
    draft.item["widget"] = "slider"
    labels = [part.strip() for part in draft.choices.split("|")] if draft.choices else []
    if len(labels) > 3:
        draft.error(
            "a slider has at most three labels (left | middle | right). Fix: remove the others.", CHOICES
        )
        return False
    draft.item["slider_labels"] = labels
    if draft.validation not in ("", "number"):
        draft.error(
            f"{draft.validation!r}: a slider takes only 'number' here (show the number). Fix: write number or "
            "leave it empty.",
            VALIDATION,
        )
    draft.item["slider_number"] = draft.validation == "number"
    return True


def _descriptive_field(draft: _Draft) -> bool:
    draft.item["widget"] = "descriptive"
    return True


def _sql_field(draft: _Draft) -> bool:
    draft.item["query"] = draft.choices
    draft.warn(
        "a 'sql' field takes its choices from a query on the REDCap server's database, which Capture "
        "cannot run: the field becomes free text, and the query is kept so that a REDCap export gives "
        "it back. Fix: replace it with a dropdown listing the choices, if you can.",
        "field_type",
    )
    return True


def _notes_field(draft: _Draft) -> bool:
    draft.item["widget"] = "textarea"
    return True


_TYPE_RULES: dict[str, Callable[[_Draft], bool]] = {
    "dropdown": _choice_field,
    "radio": _choice_field,
    "checkbox": _choice_field,
    "yesno": _boolean_field,
    "truefalse": _boolean_field,
    "calc": _calc_field,
    "file": _file_field,
    "slider": _slider_field,
    "descriptive": _descriptive_field,
    "sql": _sql_field,
    "notes": _notes_field,
}


# ---------------------------------------------------------------------------- rules for every type


def _text_choices(draft: _Draft) -> None:
    """Text fields have no choices: a BioPortal ontology is kept, anything else is reported."""
    if draft.field_type not in ("text", "notes") or not draft.choices:
        return
    if draft.choices.upper().startswith("BIOPORTAL:"):
        draft.element["ontology"] = draft.choices
    else:
        draft.warn(
            f"text fields have no choices; {draft.choices[:40]!r} is not kept. Fix: remove it, or make "
            "the field a dropdown.",
            CHOICES,
        )


def _validation(draft: _Draft) -> None:
    """A text field's validation sets its datatype; on other types (but sliders and files) it is reported."""
    validation, element = draft.validation, draft.element
    if draft.field_type == "text" and validation:
        kind = VALIDATIONS.get(validation)
        if kind is not None:
            element["datatype"], display, places = kind
            if display:
                element["display_format"] = display
            if places is not None:
                element["decimal_places"] = places
        elif validation not in TEXT_VALIDATIONS:
            draft.warn(
                f"Capture does not know the validation {validation!r} (a custom or newer REDCap type): values "
                "are stored as text and not checked; the name is kept for export.",
                VALIDATION,
            )
        element["validation"] = validation
    elif validation and draft.field_type not in ("slider", "file"):
        draft.warn(
            f"a validation ({validation!r}) applies to text fields only; REDCap ignores it on a "
            f"{draft.field_type} field and so does Capture. Fix: remove it.",
            VALIDATION,
        )


def _limits(draft: _Draft) -> None:
    """Min and max of text and slider fields (and of a calculation that has a min)."""
    row = draft.row
    if draft.field_type in ("text", "slider") or (
        draft.field_type == "calc" and row.get("text_validation_min")
    ):
        datatype = draft.element["datatype"]
        for key, target in (("text_validation_min", "min"), ("text_validation_max", "max")):
            bound = _bound(row, key, datatype, draft.conversion)
            if bound is not None:
                draft.element[target] = bound


def _item_extras(draft: _Draft) -> None:
    """Note, question number, annotation, branching, required and alignment: the item's own cells."""
    row, item, conversion = draft.row, draft.item, draft.conversion
    for key, target in (("field_note", "field_note"), ("question_number", "question_number")):
        value = row.get(key).strip()
        if value:
            item[target] = value
    annotation = row.get("field_annotation").strip()
    if annotation:
        item["annotation"] = annotation
    branching = _expression(row, "branching_logic", conversion)
    if branching:
        item["branching"] = branching
    item["required"] = _flag(row, "required_field", conversion)
    alignment = row.get("custom_alignment").strip().upper()
    if alignment:
        if alignment in ("RV", "RH", "LV", "LH"):
            item["alignment"] = alignment
        else:
            draft.error(
                f"{alignment!r} is not an alignment. Fix: use RV, RH, LV, LH or leave it empty.",
                "custom_alignment",
            )
