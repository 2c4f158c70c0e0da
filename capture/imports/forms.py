"""Forms of the import pages: the upload, and the mapping read back from the mapping page."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from capture.studies.models import Site

from .mapping import DATE_FORMATS, ColumnSpec, Mapping, format_value_map, parse_value_map
from .models import ImportUpload


class UploadForm(forms.Form):
    file = forms.FileField(help_text=".xlsx, .xls, .ods, .csv — or a REDCap records export (CSV)")
    kind = forms.ChoiceField(
        label="The file holds",
        choices=ImportUpload.KINDS,
        initial=ImportUpload.RECORDS,
        required=False,  # not sent: form records, as before the choice existed
        widget=forms.RadioSelect,
        help_text="Imaging measurements: a row per measurement (subject, date or event, lesion id, "
        "measurement, value, UCUM unit).",
    )
    site: forms.ModelChoiceField[Site] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="(several sites / not site-specific)"
    )

    def __init__(self, *args, sites=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["site"].help_text = "The site the file comes from: its last mapping is used again."


def spec_from_post(post, headers: list[str], previous: dict, targets: set[str]) -> dict:
    """Read the mapping page's fields into a mapping spec (validated by Mapping.from_spec).

    Column options the page does not show (a REDCap checkbox code, a group row, a per-column date
    format, a unit) are kept from the previous spec of the same column."""
    errors: list[str] = []
    columns = _posted_columns(post, headers, previous, targets, errors)
    try:
        missing = parse_value_map(post.get("missing_values", ""))
    except ValidationError as exc:
        errors.append(f"Missing values: {exc.messages[0]}")
        missing = {}
    try:
        extra = json.loads(post.get("extra") or "{}")
    except json.JSONDecodeError:
        extra = {}
    if errors:
        raise ValidationError(errors)

    def integer(name: str, default: int) -> int:
        try:
            return int(post.get(name) or default)
        except ValueError:
            raise ValidationError(f"{name.replace('_', ' ').capitalize()} must be a whole number.") from None

    spec = {
        "sheet": post.get("sheet", ""),
        "header_row": integer("header_row", 1),
        "header_rows": integer("header_rows", 1),
        "delimiter": post.get("delimiter", ""),
        "encoding": post.get("encoding", ""),
        "subject_column": post.get("subject_column", ""),
        "event": post.get("event", "") if not post.get("event_column") else "",
        "event_column": post.get("event_column", ""),
        "instance_column": post.get("instance_column", ""),
        "date_format": post.get("date_format", "auto"),
        "two_digit_year_pivot": integer("two_digit_year_pivot", -1),
        "missing_values": missing,
        "status": integer("status", 0),
        "overwrite": post.get("overwrite") == "on",
        "enrol": post.get("enrol") == "on",
        "site_column": post.get("site_column", ""),
        "site": post.get("site", ""),
        "enrolment_date_column": post.get("enrolment_date_column", ""),
        "key_kind": post.get("key_kind") or "mrn",
        "columns": columns,
        "event_values": extra.get("event_values", previous.get("event_values", {})),
        "status_columns": extra.get("status_columns", previous.get("status_columns", {})),
        "repeat_form_column": extra.get("repeat_form_column", previous.get("repeat_form_column", "")),
    }
    Mapping.from_spec(spec)
    return spec


def _posted_columns(
    post, headers: list[str], previous: dict, targets: set[str], errors: list[str]
) -> list[dict]:
    """The page's column rows as column specs; a row's problem goes to `errors`."""
    kept = {c["column"]: c for c in previous.get("columns", [])}
    columns = []
    for index, header in enumerate(headers):
        target = post.get(f"target-{index}", "")
        if not target:
            continue
        if target not in targets:
            errors.append(f"Column {header!r}: {target!r} is not an item of the study's forms.")
            continue
        form, item = target.split(".", 1)
        try:
            values = parse_value_map(post.get(f"values-{index}", ""))
        except ValidationError as exc:
            errors.append(f"Column {header!r}: {exc.messages[0]}")
            continue
        old = kept.get(header, {})
        same = old.get("form") == form and old.get("item") == item
        columns.append(
            ColumnSpec(
                column=header,
                form=form,
                item=item,
                values=values,
                code=old.get("code", "") if same else "",
                row=old.get("row", 1) if same else 1,
                date_format=old.get("date_format", "") if same else "",
                unit=old.get("unit", "") if same else "",
            ).to_spec()
        )
    return columns


# A sample value on the mapping page is cut to this many characters: the page shows what a column
# holds, and a sheet of 32,767-character cells must not make it megabytes long.
SAMPLE_CHARS = 60


def _sample(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def page_columns(headers: list[str], spec: dict, preview: list[list[str]]) -> list[dict]:
    """Rows of the mapping table: header, sample values (shortened), current target and value map."""
    by_header = {c["column"]: c for c in spec.get("columns", [])}
    rows = []
    for index, header in enumerate(headers):
        col = by_header.get(header, {})
        rows.append(
            {
                "index": index,
                "header": header,
                "samples": [_sample(r[index]) for r in preview if index < len(r) and r[index] != ""][:3],
                "target": f"{col['form']}.{col['item']}" if col else "",
                "values": format_value_map(col.get("values", {})) if col else "",
                "code": col.get("code", "") if col else "",
            }
        )
    return rows


DATE_FORMAT_CHOICES = list(DATE_FORMATS.items())
