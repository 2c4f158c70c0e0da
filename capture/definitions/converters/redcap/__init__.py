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

The package is split by concern: `rows` (the CSV and its columns), `fields` (one row to an element and
its item), `dictionary_in` (rows to forms; `read_dictionary`), `schedule` (arms, events, mapping) and
`dictionary_out` (the writers).
"""

from __future__ import annotations

from .. import Conversion, Problem
from .dictionary_in import build_from_rows, read_dictionary
from .dictionary_out import REDCAP_CODE, write_dictionary, write_schedule
from .rows import (
    COLUMNS,
    CURLY,
    FIELD_TYPES,
    LOCAL_ROOT,
    MAX_ID,
    OLD_VALIDATION_NAMES,
    REQUIRED_COLUMNS,
    TEXT_VALIDATIONS,
    UI_NAMES,
    VALIDATIONS,
    YES,
    Row,
    column_letter,
    decode,
    element_id,
    parse_choices,
    project_key,
    read_rows,
)
from .schedule import event_key

__all__ = [
    "COLUMNS",
    "CURLY",
    "FIELD_TYPES",
    "LOCAL_ROOT",
    "MAX_ID",
    "OLD_VALIDATION_NAMES",
    "REDCAP_CODE",
    "REQUIRED_COLUMNS",
    "TEXT_VALIDATIONS",
    "UI_NAMES",
    "VALIDATIONS",
    "YES",
    "Conversion",
    "Problem",
    "Row",
    "build_from_rows",
    "column_letter",
    "decode",
    "element_id",
    "event_key",
    "parse_choices",
    "project_key",
    "read_dictionary",
    "read_rows",
    "write_dictionary",
    "write_schedule",
]
