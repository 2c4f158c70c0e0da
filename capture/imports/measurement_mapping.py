"""The mapping of a measurement sheet: which column holds the subject, the date or event, the lesion
id, the measurement, its value and unit (and optionally the finding site, the lymph-node flag and
the reader), suggested from the headers and kept as JSON with the upload.

A measurement sheet has a fixed set of targets, not a study's form items, so its mapping is this
small object rather than `mapping.Mapping` (whose columns name form items); the reading options
(sheet, header rows, CSV delimiter and encoding) and the date formats are the same.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from django.core.exceptions import ValidationError

from .mapping import DATE_FORMATS

# target → (label, the header texts that suggest it, normalised)
TARGETS = {
    "subject_column": (
        "Subject id",
        ("subject", "subject id", "subjectid", "patient", "patient id", "record id"),
    ),
    "date_column": (
        "Date",
        (
            "date",
            "scan date",
            "study date",
            "exam date",
            "acquisition date",
            "measurement date",
            "image date",
        ),
    ),
    "event_column": ("Event", ("event", "timepoint", "time point", "visit", "event name")),
    "lesion_column": ("Lesion id", ("lesion", "lesion id", "lesionid", "tracking id", "lesion number")),
    "type_column": ("Measurement", ("measurement", "measurement type", "type", "quantity", "concept")),
    "value_column": ("Value", ("value", "result", "measurement value", "measured value")),
    "unit_column": ("Unit (UCUM)", ("unit", "units", "ucum", "ucum unit", "unit of measure")),
    "site_column": ("Finding site", ("finding site", "site", "location", "organ", "anatomic site")),
    "node_column": ("Lymph node (yes/no)", ("lymph node", "node", "is node", "nodal")),
    "reader_column": ("Reader", ("reader", "observer", "radiologist", "read by")),
}
REQUIRED = ("subject_column", "lesion_column", "type_column", "value_column", "unit_column")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()


@dataclass
class SheetMapping:
    subject_column: str = ""
    date_column: str = ""
    event_column: str = ""
    lesion_column: str = ""
    type_column: str = ""
    value_column: str = ""
    unit_column: str = ""
    site_column: str = ""
    node_column: str = ""
    reader_column: str = ""
    date_format: str = "auto"
    two_digit_year_pivot: int = -1
    sheet: str = ""
    header_row: int = 1
    header_rows: int = 1
    delimiter: str = ""
    encoding: str = ""

    @classmethod
    def from_spec(cls, spec: dict) -> SheetMapping:
        """A mapping from its JSON; refuses unknown keys and a bad date format (not missing
        columns: the dry run reports those against the sheet's headers)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValidationError(
                f"Unknown measurement mapping key(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        mapping = cls(**spec)
        if mapping.date_format not in DATE_FORMATS:
            raise ValidationError(
                f"Date format {mapping.date_format!r}: use one of {', '.join(DATE_FORMATS)}."
            )
        return mapping

    def to_spec(self) -> dict:
        return asdict(self)

    def reader_options(self) -> dict:
        return {
            "sheet": self.sheet,
            "header_row": self.header_row,
            "header_rows": self.header_rows,
            "delimiter": self.delimiter,
            "encoding": self.encoding,
        }

    def pivot(self) -> int:
        if self.two_digit_year_pivot >= 0:
            return self.two_digit_year_pivot
        import datetime as dt

        return dt.date.today().year % 100  # noqa: DTZ011 - a calendar year is all that matters here

    def missing(self) -> list[str]:
        """What the mapping still needs: the required columns, and a date or an event column."""
        needed = [TARGETS[key][0] for key in REQUIRED if not getattr(self, key)]
        if not self.date_column and not self.event_column:
            needed.append("Date or Event")
        return needed


def suggest(headers: list[str]) -> dict:
    """A mapping spec from the headers: each target takes the header that names it exactly, else
    the first header that contains one of its names as a word; a header serves one target."""
    taken: set[str] = set()
    spec: dict = {}
    normalised = {header: _norm(header) for header in headers}
    for exact in (True, False):
        for target, (_label, names) in TARGETS.items():
            if spec.get(target):
                continue
            for header, norm in normalised.items():
                if header in taken or not norm:
                    continue
                hit = norm in names if exact else any(re.search(rf"\b{n}\b", norm) for n in names)
                if hit:
                    spec[target] = header
                    taken.add(header)
                    break
    return SheetMapping(**spec).to_spec()
