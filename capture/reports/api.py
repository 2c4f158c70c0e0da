"""REDCap's `content=report`: export a saved report (report_id = the report's number) as the
flat record export of its fields, events and filter, sorted; json, csv or xml, raw or labels."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.http.response import HttpResponseBase

from capture.api.redcap import render
from capture.api.redcap.params import Params, RedcapError

from .models import Report
from .rows import ReportError, report_table

# REDCap's csvDelimiter values (PyCap sends "," unless told otherwise).
DELIMITERS = {",": ",", "tab": "\t", ";": ";", "|": "|", "^": "^"}


def export_report(user, study, p: Params) -> HttpResponseBase:
    if (p.get("action") or "export").lower() != "export":
        raise RedcapError("Reports are defined in Capture's web pages: the API only exports them.")
    fmt = p.choice("format", ("json", "csv", "xml"), "xml")
    labels = p.choice("rawOrLabel", ("raw", "label"), "raw") == "label"
    label_headers = p.choice("rawOrLabelHeaders", ("raw", "label"), "raw") == "label"
    delimiter = DELIMITERS[p.choice("csvDelimiter", tuple(DELIMITERS), ",")]
    raw_id = p.get("report_id")
    if not raw_id:
        raise RedcapError("The parameter report_id is missing: send the number of a report of this project.")
    report = (
        Report.objects.filter(study=study, pk=int(raw_id)).first()
        if raw_id.isascii() and raw_id.isdigit()
        else None
    )
    if report is None:
        # REDCap's wording, with the id: the report is not in this project (or does not exist).
        raise RedcapError(f'The value of the parameter "report_id" is not valid: {raw_id!r}.')
    try:
        table = report_table(
            user,
            report,
            labels=labels,
            label_headers=label_headers and fmt == "csv",
            checkbox_label=p.flag("exportCheckboxLabel"),
        )
    except ReportError as exc:
        raise RedcapError(f"The report cannot run on this project as it is now: {exc}") from None
    if fmt == "csv" and delimiter != ",":
        return HttpResponse(_csv(table, delimiter), content_type=render.CONTENT_TYPES["csv"])
    return render.rows_response(fmt, table.rows, table.names, table.headers if fmt == "csv" else None)


def _csv(table, delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows([row.get(n, "") for n in table.names] for row in table.rows)
    return buffer.getvalue()
