"""Answers in REDCap's formats: JSON, CSV and XML, and errors in the format asked for."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from xml.sax.saxutils import escape

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

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
    return (_csv_line(headers or columns) if columns else "") + _csv_rows(rows, columns)


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


# Rows rendered per piece of a streamed answer. An answer of one piece goes out whole (with a length).
STREAM_BATCH = 1000


def rows_stream(
    fmt: str, rows: Iterable[dict], columns: list[str] | None = None, headers=None, delimiter: str = ","
) -> HttpResponseBase:
    """`rows_response` for many rows, read lazily: the same bytes, rendered and sent STREAM_BATCH rows
    at a time, so the server holds one batch, not the whole answer. Everything that can fail with a
    REDCap error must have been checked before: once streaming, the status is sent. `delimiter` is
    CSV's (REDCap's csvDelimiter)."""
    pieces = _pieces(fmt, iter(rows), columns, headers, delimiter)
    first = list(itertools.islice(pieces, 2))
    if len(first) < 2:
        return HttpResponse("".join(first), content_type=CONTENT_TYPES[fmt])
    return StreamingHttpResponse(itertools.chain(first, pieces), content_type=CONTENT_TYPES[fmt])


def _pieces(
    fmt: str, rows: Iterator[dict], columns: list[str] | None, headers, delimiter: str = ","
) -> Iterator[str]:
    """The answer in pieces of STREAM_BATCH rows; one piece when the rows fit in one batch."""
    batches = iter(lambda: list(itertools.islice(rows, STREAM_BATCH)), [])
    batch = next(batches, [])
    if columns is None:
        columns = list(batch[0]) if batch else []
    render: Callable[[list[dict]], str]
    if fmt == "csv":
        opening, separator, closing = (_csv_line(headers or columns, delimiter) if columns else ""), "", ""
        render = functools.partial(_csv_rows, columns=columns, delimiter=delimiter)
    elif fmt == "xml":
        opening, separator, closing = '<?xml version="1.0" encoding="UTF-8" ?>\n<records>', "", "\n</records>"
        render = _xml_items
    else:
        # json.dumps of the whole list, cut at batch boundaries: "[" row ", " row … "]".
        opening, separator, closing = "[", ", ", "]"
        render = functools.partial(_json_rows, columns=columns)
    text = opening + render(batch)
    for following in batches:
        yield text
        text = separator + render(following)
    yield text + closing


def _csv_line(values: list[str], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", delimiter=delimiter).writerow(values)
    return buffer.getvalue()


def _csv_rows(rows: list[dict], columns: list[str], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", delimiter=delimiter)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def _xml_items(rows: list[dict]) -> str:
    return "".join(
        "\n<item>" + "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in row.items()) + "</item>" for row in rows
    )


def _json_rows(rows: list[dict], columns: list[str]) -> str:
    return json.dumps([{c: row.get(c, "") for c in columns} for row in rows], ensure_ascii=False)[1:-1]


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
