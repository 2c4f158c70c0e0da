"""Cells of files that people open in a spreadsheet program.

A text cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return before one) is
run as a formula by Excel, LibreOffice and Google Sheets when the file is opened: a value typed
into a form or a legacy sheet could then fetch a URL or run a command on the reader's machine
(OWASP "CSV injection"). Every CSV and XLSX Capture writes for people passes its text cells
through `neutralise`, which prefixes such a value with an apostrophe — the spreadsheet shows the
text as typed and does not evaluate it. Numbers are never changed (a negative number is data).

Machine-facing files keep values raw: the REDCap API's CSV, as REDCap's own does (its clients
parse it, they do not open it); docs/reliability.md says so.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """`value` safe to put in a spreadsheet cell: a text cell that a spreadsheet would run as a
    formula gets a leading apostrophe; anything else (numbers, dates, None) is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_row(row):
    return [neutralise(v) for v in row]
