"""REDCap data dictionaries (CSV) to Capture definitions, and back.

Reads the 18 columns of a dictionary downloaded from REDCap's Data Dictionary page ("Variable / Field
Name", ...) or fetched through its API (`field_name`, ...), including R-written files where every
empty cell is a literal NA, files with a UTF-8 byte-order mark, curly quotes, multi-line labels and
blank lines. Longitudinal projects add the arms, events and instrument-event mapping CSVs (API
column names: `arm_num,name`; `event_name,arm_num,unique_event_name,...`; `arm_num,unique_event_name,form`).

Names: a field becomes the local element `capture.redcap.<project>.<field>` version 1.0; an
instrument becomes the form `<project>_<instrument>` (form names are global in Capture, so two
studies may both have "demographics"); the instrument name is kept in the form's `instrument:`.

The writer (`write_dictionary`) works from schema models, so the same code exports a converted
dictionary and any study loaded from YAML. Both directions are documented in docs/interop.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass

from pydantic import ValidationError

from capture.cells import FORMULA_STARTS, neutralise

from .. import expressions as language
from ..schema import (
    NAME_RE,
    Arm,
    DataElement,
    Event,
    EventForm,
    FormFile,
    Item,
    ItemGroup,
    ScheduleFile,
    Section,
)
from . import Conversion, Problem

# (API name, name on REDCap's Data Dictionary page), in REDCap's order.
COLUMNS = [
    ("field_name", "Variable / Field Name"),
    ("form_name", "Form Name"),
    ("section_header", "Section Header"),
    ("field_type", "Field Type"),
    ("field_label", "Field Label"),
    ("select_choices_or_calculations", "Choices, Calculations, OR Slider Labels"),
    ("field_note", "Field Note"),
    ("text_validation_type_or_show_slider_number", "Text Validation Type OR Show Slider Number"),
    ("text_validation_min", "Text Validation Min"),
    ("text_validation_max", "Text Validation Max"),
    ("identifier", "Identifier?"),
    ("branching_logic", "Branching Logic (Show field only if...)"),
    ("required_field", "Required Field?"),
    ("custom_alignment", "Custom Alignment"),
    ("question_number", "Question Number (surveys only)"),
    ("matrix_group_name", "Matrix Group Name"),
    ("matrix_ranking", "Matrix Ranking?"),
    ("field_annotation", "Field Annotation"),
]
UI_NAMES = dict(COLUMNS)
REQUIRED_COLUMNS = ("field_name", "form_name", "field_type", "field_label")

# REDCap text validation -> (datatype, display_format, decimal places). Every validation not listed
# (phone, zipcode, ssn, postal codes, MRNs, custom ones) is text, its name kept in `validation:`.
VALIDATIONS: dict[str, tuple[str, str | None, int | None]] = {
    "date_ymd": ("date", "ymd", None),
    "date_mdy": ("date", "mdy", None),
    "date_dmy": ("date", "dmy", None),
    "datetime_ymd": ("datetime", "ymd", None),
    "datetime_mdy": ("datetime", "mdy", None),
    "datetime_dmy": ("datetime", "dmy", None),
    "datetime_seconds_ymd": ("datetime", "ymd", None),
    "datetime_seconds_mdy": ("datetime", "mdy", None),
    "datetime_seconds_dmy": ("datetime", "dmy", None),
    "time": ("time", None, None),
    "time_hh_mm_ss": ("time", None, None),
    "integer": ("integer", None, None),
    "number": ("decimal", None, None),
    "number_comma_decimal": ("decimal", None, None),
}
for _places in range(1, 5):
    VALIDATIONS[f"number_{_places}dp"] = ("decimal", None, _places)
    VALIDATIONS[f"number_{_places}dp_comma_decimal"] = ("decimal", None, _places)
# Known text validations (kept by name, values stored as text). time_mm_ss is a duration (MM:SS),
# not a time of day, so it stays text rather than being read as HH:MM.
TEXT_VALIDATIONS = {
    "alpha_only",
    "email",
    "mrn_10d",
    "mrn_generic",
    "phone",
    "phone_australia",
    "postalcode_australia",
    "postalcode_canada",
    "postalcode_french",
    "postalcode_germany",
    "postalcode_uk",
    "ssn",
    "time_mm_ss",
    "vmrn",
    "zipcode",
}
# Older names REDCap still writes in project XML; read as today's names.
OLD_VALIDATION_NAMES = {"int": "integer", "float": "number"}
FIELD_TYPES = (
    "text",
    "notes",
    "dropdown",
    "radio",
    "checkbox",
    "yesno",
    "truefalse",
    "calc",
    "file",
    "slider",
    "descriptive",
    "sql",
)
YES = {"y", "yes", "1"}
CURLY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
LOCAL_ROOT = "capture.redcap"
MAX_ID = 64  # DataElement.public_id and FormDefinition.name columns


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def decode(data: bytes | str, conversion: Conversion, label: str = "") -> str:
    """Text of an uploaded CSV: UTF-8 (with or without a byte-order mark), else Windows-1252."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        conversion.warn(
            f"{label or 'the file'} is not UTF-8; it was read as Windows-1252 (Excel's default). "
            "Check accented letters in the preview; save as 'CSV UTF-8' to be sure."
        )
        return data.decode("cp1252", errors="replace")


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").translate(CURLY).strip().lower().split())


_HEADER_LOOKUP = {_header_key(ui): api for api, ui in COLUMNS} | {api: api for api, _ in COLUMNS}


@dataclass
class Row:
    line: int
    values: dict[str, str]
    columns: dict[str, int]  # api name -> index in the file

    def get(self, key: str) -> str:
        return self.values.get(key, "")

    def at(self, key: str) -> dict:
        """Where a problem with this row's `key` cell is: line and column."""
        index = self.columns.get(key)
        column = f"{column_letter(index)} ({UI_NAMES[key]})" if index is not None else UI_NAMES[key]
        return {"line": self.line, "column": column, "where": f"field {self.get('field_name')!r}"}


def read_rows(text: str, conversion: Conversion) -> list[Row]:
    """Rows of a dictionary with their first line number; blank rows are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        conversion.error("the file is empty. Fix: upload a REDCap data dictionary (CSV).", line=1)
        return []
    except csv.Error as exc:
        conversion.error(f"not a CSV file: {exc}. Fix: upload the dictionary as CSV.", line=1)
        return []
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _HEADER_LOOKUP.get(_header_key(name))
        if key is None:
            if name.strip():
                conversion.error(
                    f"unknown column {name!r}. Fix: use REDCap's dictionary columns "
                    f"({', '.join(ui for _, ui in COLUMNS)}) or their API names (field_name, ...).",
                    line=1,
                    column=column_letter(index),
                )
            continue
        columns[key] = index
    missing = [UI_NAMES[c] for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        conversion.error(
            f"the header lacks {', '.join(missing)}. Fix: is this a REDCap data dictionary? Download it "
            "from Project Setup → Data Dictionary, or through the API's metadata export.",
            line=1,
        )
        return []
    rows = []
    line = reader.line_num + 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            values = {key: (_as_typed(cells[i]) if i < len(cells) else "") for key, i in columns.items()}
            rows.append(Row(start, values, columns))
    except csv.Error as exc:
        conversion.error(f"the CSV is malformed: {exc}. Fix: check quotes around that line.", line=line)
    # Written by R: every empty cell is the unquoted string NA. Columns where NA is never a value tell.
    if any(r.get(k) == "NA" for r in rows for k in ("identifier", "required_field", "matrix_ranking")):
        conversion.warn("empty cells are written as NA (a file saved from R); they were read as empty.")
        for row in rows:
            for key, value in row.values.items():
                if value == "NA" and key not in ("field_name", "form_name", "field_type", "field_label"):
                    row.values[key] = ""
    return rows


def parse_choices(text: str) -> list[tuple[str, str]]:
    """'1, A | 2, B' -> [('1', 'A'), ('2', 'B')]; raise ValueError naming the bad choice."""
    choices = []
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        code, comma, label = part.partition(",")
        if not comma or not code.strip():
            raise ValueError(
                f"choice {part!r} is not 'code, label'. Fix: write each choice as 'code, label' "
                "and separate choices with |"
            )
        choices.append((code.strip(), label.strip()))
    if not choices:
        raise ValueError("there are no choices. Fix: list them as '1, First | 2, Second'")
    codes = [c for c, _ in choices]
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise ValueError(f"choice codes repeat: {', '.join(repeated)}. Fix: give every choice its own code")
    return choices


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


def _element_for(row: Row, project: str, field_type: str, conversion: Conversion) -> tuple[dict, dict] | None:
    """(element fields, item fields) for one row, or None when the row cannot be converted."""
    name = row.get("field_name").strip()
    label = row.get("field_label").strip()
    choices_text = row.get("select_choices_or_calculations").strip()
    validation = row.get("text_validation_type_or_show_slider_number").strip()
    validation = OLD_VALIDATION_NAMES.get(validation, validation)
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
    item: dict = {}
    if field_type in ("dropdown", "radio", "checkbox"):
        try:
            choices = parse_choices(choices_text)
        except ValueError as exc:
            conversion.error(str(exc) + ".", **row.at("select_choices_or_calculations"))
            return None
        element["permissible_values"] = [{"code": c, "meaning": m} for c, m in choices]
        item["widget"] = field_type
    elif field_type in ("yesno", "truefalse"):
        yes, no = ("Yes", "No") if field_type == "yesno" else ("True", "False")
        element["datatype"] = "boolean"
        element["permissible_values"] = [{"code": "1", "meaning": yes}, {"code": "0", "meaning": no}]
        item["widget"] = field_type
    elif field_type == "calc":
        if not choices_text:
            conversion.error(
                "a calculated field needs its calculation. Fix: write it in the choices column.",
                **row.at("select_choices_or_calculations"),
            )
            return None
        element["datatype"] = "decimal"
        item["calculation"] = _expression(row, "select_choices_or_calculations", conversion)
    elif field_type == "file":
        element["datatype"] = "file"
        item["widget"] = "file"
        if validation:
            element["validation"] = validation  # "signature"
    elif field_type == "slider":
        element["datatype"] = "integer"
        item["widget"] = "slider"
        labels = [part.strip() for part in choices_text.split("|")] if choices_text else []
        if len(labels) > 3:
            conversion.error(
                "a slider has at most three labels (left | middle | right). Fix: remove the others.",
                **row.at("select_choices_or_calculations"),
            )
            return None
        item["slider_labels"] = labels
        if validation not in ("", "number"):
            conversion.error(
                f"{validation!r}: a slider takes only 'number' here (show the number). Fix: write number or "
                "leave it empty.",
                **row.at("text_validation_type_or_show_slider_number"),
            )
        item["slider_number"] = validation == "number"
    elif field_type == "descriptive":
        item["widget"] = "descriptive"
    elif field_type == "sql":
        item["query"] = choices_text
        conversion.warn(
            "a 'sql' field takes its choices from a query on the REDCap server's database, which Capture "
            "cannot run: the field becomes free text, and the query is kept so that a REDCap export gives "
            "it back. Fix: replace it with a dropdown listing the choices, if you can.",
            **row.at("field_type"),
        )
    elif field_type == "notes":
        item["widget"] = "textarea"
    if field_type in ("text", "notes") and choices_text:
        if choices_text.upper().startswith("BIOPORTAL:"):
            element["ontology"] = choices_text
        else:
            conversion.warn(
                f"text fields have no choices; {choices_text[:40]!r} is not kept. Fix: remove it, or make "
                "the field a dropdown.",
                **row.at("select_choices_or_calculations"),
            )
    if field_type == "text" and validation:
        kind = VALIDATIONS.get(validation)
        if kind is not None:
            element["datatype"], display, places = kind
            if display:
                element["display_format"] = display
            if places is not None:
                element["decimal_places"] = places
        elif validation not in TEXT_VALIDATIONS:
            conversion.warn(
                f"Capture does not know the validation {validation!r} (a custom or newer REDCap type): values "
                "are stored as text and not checked; the name is kept for export.",
                **row.at("text_validation_type_or_show_slider_number"),
            )
        element["validation"] = validation
    elif validation and field_type not in ("slider", "file"):
        conversion.warn(
            f"a validation ({validation!r}) applies to text fields only; REDCap ignores it on a "
            f"{field_type} field and so does Capture. Fix: remove it.",
            **row.at("text_validation_type_or_show_slider_number"),
        )
    if field_type in ("text", "slider") or (field_type == "calc" and row.get("text_validation_min")):
        datatype = element["datatype"]
        for key, target in (("text_validation_min", "min"), ("text_validation_max", "max")):
            bound = _bound(row, key, datatype, conversion)
            if bound is not None:
                element[target] = bound
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
            conversion.error(
                f"{alignment!r} is not an alignment. Fix: use RV, RH, LV, LH or leave it empty.",
                **row.at("custom_alignment"),
            )
    return element, item


def element_id(project: str, field: str) -> str:
    """`capture.redcap.<project>.<field>`; a long one keeps its start and a short hash of the whole, so
    that it fits the registry's 64 characters and stays unique."""
    full = f"{LOCAL_ROOT}.{project}.{field}"
    if len(full) <= MAX_ID:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_ID - 9]}_{digest}"


def _name_ok(value: str) -> bool:
    return re.fullmatch(NAME_RE, value) is not None


def project_key(text: str) -> str:
    """A study slug or file name as a project key: lower case, digits and underscores."""
    key = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"p_{key}" if key else "project"
    return key[:16].rstrip("_")


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


def build_from_rows(conversion: Conversion, rows: list[Row], project: str) -> None:
    """Fill `conversion` with the elements and forms of dictionary rows (shared with the ODM reader)."""
    seen: dict[str, int] = {}
    expressions: list[tuple[Row, str, str]] = []
    forms: dict[str, dict] = {}  # instrument -> {"title", "sections": [...]}
    order: list[str] = []
    last_form = None
    for index, row in enumerate(rows):
        name = row.get("field_name").strip()
        if not _name_ok(name):
            conversion.error(
                f"field name {name!r} must be lower case letters, digits and underscores, starting with a "
                "letter (REDCap's own rule). Fix: rename the field.",
                **row.at("field_name"),
            )
            continue
        if name in seen:
            conversion.error(
                f"field {name!r} is defined again (first on line {seen[name]}). Fix: give it another name.",
                **row.at("field_name"),
            )
            continue
        seen[name] = row.line
        if len(name) > MAX_ID:
            conversion.error(
                f"field name {name!r} is longer than {MAX_ID} characters. Fix: shorten it.",
                **row.at("field_name"),
            )
            continue
        instrument = row.get("form_name").strip()
        if not _name_ok(instrument):
            conversion.error(
                f"form name {instrument!r} must be lower case letters, digits and underscores. Fix: rename it.",
                **row.at("form_name"),
            )
            continue
        if instrument != last_form and instrument in forms:
            conversion.error(
                f"the fields of instrument {instrument!r} are not together (it started on line "
                f"{forms[instrument]['line']}). Fix: keep each instrument's fields in one block, as REDCap does.",
                **row.at("form_name"),
            )
            continue
        field_type = row.get("field_type").strip().lower()
        # Project XML names two types differently from the dictionary.
        field_type = {"select": "dropdown", "textarea": "notes"}.get(field_type, field_type)
        if field_type not in FIELD_TYPES:
            conversion.error(
                f"field type {field_type!r} is not a REDCap field type. Fix: use one of {', '.join(FIELD_TYPES)}.",
                **row.at("field_type"),
            )
            continue
        if index == 0:
            conversion.note(
                f"the first field, {name!r}, is REDCap's record id. Capture gives subjects their own ids; the "
                "field is kept as an ordinary item so that an export gives it back.",
                line=row.line,
                where=f"field {name!r}",
            )
        converted = _element_for(row, project, field_type, conversion)
        if converted is None:
            continue
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
            continue
        conversion.elements.append(element)
        if item.branching:
            expressions.append((row, "branching_logic", item.branching))
        if item.calculation:
            expressions.append((row, "select_choices_or_calculations", item.calculation))
        form_name = f"{project}_{instrument}"
        if instrument not in forms:
            if len(form_name) > MAX_ID:
                conversion.error(
                    f"the form name {form_name} is longer than {MAX_ID} characters. Fix: use a shorter project key.",
                    **row.at("form_name"),
                )
                continue
            forms[instrument] = {"line": row.line, "sections": []}
            order.append(instrument)
        last_form = instrument
        sections = forms[instrument]["sections"]
        header = row.get("section_header").strip()
        if header or not sections:
            sections.append({"title": header, "header": bool(header), "entries": []})
        entries = sections[-1]["entries"]
        matrix = row.get("matrix_group_name").strip()
        if matrix:
            if not _name_ok(matrix):
                conversion.error(
                    f"matrix group name {matrix!r} must be lower case letters, digits and underscores.",
                    **row.at("matrix_group_name"),
                )
                continue
            ranking = _flag(row, "matrix_ranking", conversion)
            last = entries[-1] if entries else None
            if isinstance(last, dict) and last.get("group") == matrix:
                last["items"].append(item)
            else:
                entries.append({"group": matrix, "matrix": True, "ranking": ranking, "items": [item]})
        else:
            entries.append(item)
    _check_references(conversion, expressions, set(seen))
    for instrument in order:
        title = instrument.replace("_", " ").capitalize()
        sections = []
        for section in forms[instrument]["sections"]:
            sections.append(
                Section(
                    title=section["title"] or title,
                    header=section["header"],
                    items=[
                        ItemGroup.model_validate(e) if isinstance(e, dict) else e for e in section["entries"]
                    ],
                )
            )
        try:
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
            conversion.error(f"instrument {instrument!r}: {exc}", line=forms[instrument]["line"])


# ---------------------------------------------------------------------------- longitudinal


def _csv_dicts(data: bytes | str, label: str, conversion: Conversion) -> list[tuple[int, dict]]:
    text = decode(data, conversion, label)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [_header_key(h).replace(" ", "_") for h in next(reader)]
    except StopIteration:
        conversion.error(f"{label} is empty. Fix: upload the file REDCap exports.")
        return []
    rows = []
    line = reader.line_num + 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if any(c.strip() for c in cells):
            rows.append(
                (
                    start,
                    {
                        h: (_as_typed(cells[i]).strip() if i < len(cells) else "")
                        for i, h in enumerate(header)
                    },
                )
            )
    return rows


def _need(rows, label: str, columns: tuple[str, ...], conversion: Conversion) -> bool:
    present = set(rows[0][1]) if rows else set()
    missing = [c for c in columns if c not in present]
    if rows and missing:
        conversion.error(
            f"{label}: the header lacks {', '.join(missing)}. Fix: export the file from REDCap's API "
            f"(columns {', '.join(columns)})."
        )
        return False
    return True


def event_key(unique_event_name: str, arm_num: str) -> str:
    """REDCap's unique event name without its arm suffix: 'visit_1_arm_1' -> 'visit_1'."""
    key = re.sub(rf"_arm_{re.escape(arm_num)}$", "", unique_event_name)
    key = re.sub(r"[^a-z0-9_]+", "_", key.lower()).strip("_")
    return key if key and key[0].isalpha() else f"event_{key}"


def _longitudinal(conversion, arms_data, events_data, mapping_data, instruments) -> dict:
    arms = _csv_dicts(arms_data, "arms file", conversion) if arms_data is not None else []
    events = _csv_dicts(events_data, "events file", conversion)
    mapping = _csv_dicts(mapping_data, "mapping file", conversion) if mapping_data is not None else []
    if mapping_data is None:
        conversion.error(
            "a longitudinal project needs its instrument-event mapping. Fix: upload the mapping CSV "
            "(arm_num,unique_event_name,form) with the events."
        )
    ok = _need(events, "events file", ("event_name", "arm_num"), conversion)
    ok = _need(mapping, "mapping file", ("arm_num", "unique_event_name", "form"), conversion) and ok
    ok = _need(arms, "arms file", ("arm_num", "name"), conversion) and ok
    if not ok:
        return {}
    arm_titles = {row["arm_num"]: row["name"] for _, row in arms}
    plan: dict = {}  # arm_num -> {"title", "events": {unique: {...}}}
    for line, row in events:
        arm_num = row["arm_num"]
        unique = row.get("unique_event_name") or (
            re.sub(r"[^a-z0-9]+", "_", row["event_name"].lower()).strip("_")[:18] + f"_arm_{arm_num}"
        )
        arm = plan.setdefault(arm_num, {"title": arm_titles.get(arm_num, f"Arm {arm_num}"), "events": {}})
        if arms and arm_num not in arm_titles:
            conversion.error(
                f"events file: event {unique!r} is in arm {arm_num}, which the arms file does not list. "
                "Fix: add the arm or correct arm_num.",
                line=line,
            )
        try:
            day = int(float(row.get("day_offset") or 0))
            before = int(float(row.get("offset_min") or 0))
            after = int(float(row.get("offset_max") or 0))
        except ValueError:
            conversion.error("events file: day_offset, offset_min and offset_max must be numbers.", line=line)
            continue
        if row.get("custom_event_label"):
            conversion.warn(
                f"events file: the custom event label {row['custom_event_label']!r} (piped from record data) "
                "is not shown by Capture.",
                line=line,
            )
        arm["events"][unique] = {
            "name": event_key(unique, arm_num),
            "title": row["event_name"],
            "day": day,
            "window_before": before,
            "window_after": after,
            "forms": [],
            "line": line,
        }
    for line, row in mapping:
        arm = plan.get(row["arm_num"])
        event = arm and arm["events"].get(row["unique_event_name"])
        if not event:
            conversion.error(
                f"mapping file: event {row['unique_event_name']!r} of arm {row['arm_num']} is not in the events "
                "file. Fix: correct the event or upload the matching events file.",
                line=line,
            )
            continue
        if row["form"] not in instruments:
            conversion.error(
                f"mapping file: instrument {row['form']!r} is not in the dictionary. Fix: correct the name.",
                line=line,
            )
            continue
        event["forms"].append(row["form"])
    return plan


def _schedule(
    conversion: Conversion, project: str, plan: dict | None, repeating: set[str]
) -> ScheduleFile | None:
    by_instrument = {f.instrument: f for f in conversion.forms}
    order = list(by_instrument)

    def entries(instruments):
        return [
            EventForm(form=by_instrument[i].ref, repeating=i in repeating)
            for i in sorted(set(instruments), key=order.index)
        ]

    if plan is None:
        arms = [
            Arm(
                name="arm_1",
                title="Arm 1",
                events=[Event(name="event_1", title="Event 1", forms=entries(order))],
            )
        ]
    else:
        arms = []
        for arm_num, arm in plan.items():
            events = []
            for unique, event in arm["events"].items():
                if not event["forms"]:
                    conversion.warn(
                        f"events file: event {unique!r} has no instruments in the mapping; Capture events hold at "
                        "least one form, so it is left out. Fix: map an instrument to it if it collects data.",
                        line=event["line"],
                    )
                    continue
                events.append(
                    Event(
                        name=event["name"],
                        title=event["title"],
                        day=event["day"],
                        window_before=event["window_before"],
                        window_after=event["window_after"],
                        forms=entries(event["forms"]),
                    )
                )
            if events:
                arms.append(Arm(name=f"arm_{arm_num}", title=arm["title"], events=events))
    try:
        return ScheduleFile(schedule=project, version="1.0", title=conversion.title or project, arms=arms)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"schedule: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}.")
        return None


# ---------------------------------------------------------------------------- writing


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


def _as_typed(cell: str) -> str:
    """A dictionary cell as its author typed it: the apostrophe `_PeopleCsv` put before a
    formula-like text is removed (REDCap's own upload keeps it; docs/reliability.md says so)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def write_dictionary(forms: list[FormFile], elements: dict[str, DataElement]) -> tuple[str, list[Problem]]:
    """A REDCap data dictionary (CSV text, REDCap's UI column names) of `forms`, and the problems:
    what REDCap cannot hold (units, concept codes, repeating groups) said as warnings."""
    problems: list[Problem] = []
    out = io.StringIO()
    writer = _PeopleCsv(out)
    writer.writerow([ui for _, ui in COLUMNS])
    used: set[str] = set()
    rows: list[list[str]] = []
    first_from_redcap = bool(forms) and forms[0].instrument is not None
    unitless = set()
    if forms and not first_from_redcap:
        first = forms[0].instrument or forms[0].form
        rows.append(["record_id", first, "", "text", "Record ID"] + [""] * 13)
        used.add("record_id")
        problems.append(
            Problem(
                "REDCap's first field is the record id: a field 'record_id' was added to the first instrument.",
                "warning",
            )
        )
    for form in forms:
        instrument = form.instrument or form.form
        for section in form.sections:
            header = section.title if section.header else ""
            for entry in section.items:
                if isinstance(entry, ItemGroup):
                    target = instrument
                    if entry.repeating:
                        target = f"{instrument}_{entry.group}"[:64]
                        problems.append(
                            Problem(
                                f"form {form.form}: the repeating group {entry.group!r} became the instrument "
                                f"{target!r}; in REDCap, make it a repeating instrument.",
                                "warning",
                            )
                        )
                    elif not entry.matrix:
                        problems.append(
                            Problem(
                                f"form {form.form}: group {entry.group!r} has no REDCap equivalent; its items are "
                                "plain fields.",
                                "warning",
                            )
                        )
                    for item in entry.items:
                        rows.append(
                            _row(
                                item,
                                elements,
                                target,
                                header,
                                entry if entry.matrix else None,
                                used,
                                problems,
                                unitless,
                            )
                        )
                        header = ""
                else:
                    rows.append(_row(entry, elements, instrument, header, None, used, problems, unitless))
                    header = ""
    # REDCap wants each instrument's fields in one block; repeating groups come after their form.
    order: list[str] = []
    for row in rows:
        if row[1] not in order:
            order.append(row[1])
    rows.sort(key=lambda r: order.index(r[1]))
    writer.writerows(rows)
    if unitless:
        problems.append(
            Problem(
                "a REDCap dictionary has no place for units, element ids or concept codes: units were added to "
                f"the field notes of {', '.join(sorted(unitless))}; ids and concept codes are in the ODM export.",
                "warning",
            )
        )
    return out.getvalue(), problems


def _row(item, elements, instrument, header, matrix, used, problems, unitless) -> list[str]:
    element = elements[item.element]
    name = item.name or element.name
    if name in used:
        new = f"{name}_{instrument}"[:100]
        problems.append(
            Problem(
                f"field {name!r} appears in more than one form; in {instrument} it is named {new!r}.",
                "warning",
            )
        )
        name = new
    used.add(name)
    field_type = _field_type(item, element)
    if matrix is not None and field_type == "dropdown":
        field_type = "radio"  # REDCap's matrix rows are radio buttons or checkboxes only
    choices = ""
    if field_type in ("dropdown", "radio", "checkbox"):
        pvs = element.permissible_values
        codes = [pv.code for pv in pvs]
        if not all(REDCAP_CODE.match(c) for c in codes):
            problems.append(
                Problem(
                    f"field {name!r}: REDCap codes are letters, digits and underscores; the codes were numbered "
                    + ", ".join(f"{n + 1}={c}" for n, c in enumerate(codes))
                    + ".",
                    "warning",
                )
            )
            codes = [str(n + 1) for n in range(len(pvs))]
        choices = " | ".join(f"{c}, {pv.meaning.replace('|', '/')}" for c, pv in zip(codes, pvs, strict=True))
    elif field_type == "calc":
        choices = item.calculation or ""
    elif field_type == "slider":
        choices = " | ".join(item.slider_labels)
    elif field_type == "sql":
        choices = item.query or ""
    elif element.ontology:
        choices = element.ontology
    validation = ""
    if field_type == "text":
        validation = _validation(element)
    elif field_type == "slider":
        validation = "number" if item.slider_number else ""
    elif field_type == "file":
        validation = element.validation or ""
    low = high = ""
    if field_type in ("text", "slider"):
        low, high = _number(element.min), _number(element.max)
    note = item.field_note or ""
    if element.unit and field_type != "descriptive":
        note = f"{note} ({element.unit})".strip() if note else element.unit
        unitless.add(name)
    return [
        name,
        instrument,
        header,
        field_type,
        item.label or element.question,
        choices,
        note,
        validation,
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
