"""The CSV side of a REDCap data dictionary: its columns, field types and validations, and the rows
read from an uploaded file (line numbers kept, so that every problem says where it is)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass

from capture.cells import FORMULA_STARTS

from ...schema import NAME_RE
from .. import Conversion

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
    columns = _header_columns(header, conversion)
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
    _na_as_empty(rows, conversion)
    return rows


def _header_columns(header: list[str], conversion: Conversion) -> dict[str, int]:
    """API column name -> index in the file, for every header cell that names a dictionary column."""
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
    return columns


def _na_as_empty(rows: list[Row], conversion: Conversion) -> None:
    """Written by R, every empty cell is the unquoted string NA: columns where NA is never a value tell."""
    if any(r.get(k) == "NA" for r in rows for k in ("identifier", "required_field", "matrix_ranking")):
        conversion.warn("empty cells are written as NA (a file saved from R); they were read as empty.")
        for row in rows:
            for key, value in row.values.items():
                if value == "NA" and key not in ("field_name", "form_name", "field_type", "field_label"):
                    row.values[key] = ""


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


def _as_typed(cell: str) -> str:
    """A dictionary cell as its author typed it: the apostrophe `_PeopleCsv` put before a
    formula-like text is removed (REDCap's own upload keeps it; docs/reliability.md says so)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell
