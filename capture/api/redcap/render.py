"""Answers in REDCap's formats: JSON, CSV and XML, and errors in the format asked for."""

from __future__ import annotations

import csv
import io
import json
from xml.sax.saxutils import escape

from django.http import HttpResponse

CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}


def _cdata(value) -> str:
    text = "" if value is None else str(value)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def rows_csv(rows: list[dict], columns: list[str] | None = None, headers: list[str] | None = None) -> str:
    columns = columns if columns is not None else (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if columns:
        writer.writerow(headers or columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def rows_xml(rows: list[dict], root: str = "records", item: str = "item") -> str:
    parts = ['<?xml version="1.0" encoding="UTF-8" ?>', f"<{root}>"]
    for row in rows:
        parts.append(f"<{item}>" + "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in row.items()) + f"</{item}>")
    parts.append(f"</{root}>")
    return "\n".join(parts)


def rows_response(fmt: str, rows: list[dict], columns: list[str] | None = None, headers=None) -> HttpResponse:
    if fmt == "csv":
        return HttpResponse(rows_csv(rows, columns, headers), content_type=CONTENT_TYPES["csv"])
    if fmt == "xml":
        return HttpResponse(rows_xml(rows), content_type=CONTENT_TYPES["xml"])
    if columns is not None:
        rows = [{c: row.get(c, "") for c in columns} for row in rows]
    return HttpResponse(json.dumps(rows, ensure_ascii=False), content_type=CONTENT_TYPES["json"])


def object_response(fmt: str, obj: dict, root: str = "project") -> HttpResponse:
    if fmt == "csv":
        return HttpResponse(rows_csv([obj]), content_type=CONTENT_TYPES["csv"])
    if fmt == "xml":
        body = '<?xml version="1.0" encoding="UTF-8" ?>\n' + f"<{root}>"
        body += "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in obj.items()) + f"</{root}>"
        return HttpResponse(body, content_type=CONTENT_TYPES["xml"])
    return HttpResponse(json.dumps(obj, ensure_ascii=False), content_type=CONTENT_TYPES["json"])


def value_response(fmt: str, value, key: str = "count") -> HttpResponse:
    """An import's or delete's answer: a number (or list), as REDCap returns it."""
    if fmt == "csv":
        if isinstance(value, list):
            return HttpResponse("id\n" + "".join(f"{v}\n" for v in value), content_type=CONTENT_TYPES["csv"])
        return HttpResponse(str(value), content_type=CONTENT_TYPES["csv"])
    if fmt == "xml":
        if isinstance(value, list):
            body = "<ids>" + "".join(f"<id>{escape(str(v))}</id>" for v in value) + "</ids>"
        else:
            body = f"<{key}>{value}</{key}>"
        return HttpResponse(
            '<?xml version="1.0" encoding="UTF-8" ?>\n' + body, content_type=CONTENT_TYPES["xml"]
        )
    return HttpResponse(json.dumps(value), content_type=CONTENT_TYPES["json"])


def error_response(fmt: str, message: str, status: int = 400) -> HttpResponse:
    """REDCap's error shapes: {"error": …} for JSON, `ERROR: …` for CSV, <error> for XML (the default)."""
    if fmt == "json":
        return HttpResponse(json.dumps({"error": message}), content_type=CONTENT_TYPES["json"], status=status)
    if fmt == "csv":
        return HttpResponse(f"ERROR: {message}", content_type=CONTENT_TYPES["csv"], status=status)
    body = f'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>{escape(message)}</error>\n</hash>'
    return HttpResponse(body, content_type=CONTENT_TYPES["xml"], status=status)
