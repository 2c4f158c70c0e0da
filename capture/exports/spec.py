"""What an export asks for: the selection, the layout, the formats and the de-identification.

An ExportSpec is plain data, so the web form, the API, `manage.py export_dataset` and a
background job all describe an export the same way (a job stores it as JSON in its params),
and the provenance manifest records it verbatim so the export can be reproduced.
If you add a field here, add it to `to_dict`/`from_dict`, the builder form, the command and
docs/exports.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from django.core.exceptions import ValidationError

LAYOUTS = {
    "wide": "Wide — one row per subject; events, instances and repeated rows as suffixed columns",
    "long": "Long — one row per subject × event × instance",
    "tidy": "Tidy — one table per form (and per repeating item group)",
}
FORMATS = {
    "csv": "CSV",
    "xlsx": "Excel workbook (.xlsx), a sheet per table and the codebook",
    "parquet": "Parquet (typed columns)",
    "dta": "Stata (.dta) with variable and value labels",
    "sav": "SPSS (.sav) with variable and value labels, missing-data codes as user-missing",
    "xpt": "SAS transport (.xpt, version 8)",
    "odm": "CDISC ODM 1.3.2 XML (metadata and clinical data)",
}
# Short names of the formats, for messages ("Stata was not written: ...").
FORMAT_TITLES = {
    "csv": "CSV",
    "xlsx": "Excel",
    "parquet": "Parquet",
    "dta": "Stata",
    "sav": "SPSS",
    "xpt": "SAS transport",
    "odm": "ODM",
}
CHECKBOX_MODES = {
    "split": "One 0/1 column per option",
    "combined": "One column, chosen options joined with |",
}
DATE_MODES = {
    "shift": "Shift every date by the subject's date shift (intervals stay true)",
    "offset": "Replace every date by days since enrolment",
    "none": "Real dates (identified exports only)",
}
FILES_NEED_IDENTIFIED = (
    "File contents come only with an identified export: a file's content (a scan, a scanned letter) "
    "cannot be de-identified. Untick 'include file contents', or ask for an identified export."
)


@dataclass
class ExportSpec:
    """An export request. Empty selections mean "everything the user may see"."""

    layout: str = "wide"
    formats: list[str] = field(default_factory=lambda: ["csv"])
    forms: list[str] = field(default_factory=list)  # form names
    items: list[str] = field(default_factory=list)  # "form.item" (an item of a chosen form)
    events: list[str] = field(default_factory=list)  # event names
    sites: list[str] = field(default_factory=list)  # site codes
    subjects: list[str] = field(default_factory=list)  # subject ids
    cohort: str = ""  # an expression in the branching-logic language
    checkboxes: str = "split"
    labels: bool = False  # CSV/XLSX/Parquet: meanings instead of codes
    identified: bool = False
    reason: str = ""  # required for an identified export
    date_mode: str = "shift"
    rehash_ids: bool = False
    drop_free_text: bool = False
    imaging: bool = True  # imaging columns, when the imaging app provides them
    include_files: bool = False  # file fields' contents in the zip (identified exports only)
    measurements: bool = False  # imaging measurement and response tables (measurements.py)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ExportSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"Unknown export option(s): {', '.join(unknown)}. Known options: {', '.join(sorted(known))}."
            )
        return cls(**data)

    def check(self) -> None:
        """Refuse a spec that cannot be built, saying how to fix it (permissions are the service's job)."""
        problems = []
        if self.layout not in LAYOUTS:
            problems.append(f"Layout {self.layout!r} is unknown; use one of {', '.join(LAYOUTS)}.")
        if not self.formats:
            problems.append(f"Choose at least one format ({', '.join(FORMATS)}).")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            problems.append(f"Format(s) {', '.join(bad)} unknown; use any of {', '.join(FORMATS)}.")
        if self.checkboxes not in CHECKBOX_MODES:
            problems.append(f"Checkbox mode {self.checkboxes!r} is unknown; use 'split' or 'combined'.")
        if self.date_mode not in DATE_MODES:
            problems.append(f"Date mode {self.date_mode!r} is unknown; use 'shift', 'offset' or 'none'.")
        if self.date_mode == "none" and not self.identified:
            problems.append(
                "Real dates are only in identified exports; choose 'shift' or 'offset', or ask for an "
                "identified export (which needs the export_identified right and a reason)."
            )
        if self.include_files and not self.identified:
            problems.append(FILES_NEED_IDENTIFIED)
        if self.identified and not self.reason.strip():
            problems.append("An identified export needs a reason (it is written to the audit trail).")
        for ref in self.items:
            if "." not in ref:
                problems.append(f"Item {ref!r} must be written form.item, e.g. demographics.age.")
        if problems:
            raise ValidationError(problems)
