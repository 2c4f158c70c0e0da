"""A multipart/form-data body of the REDCap endpoint, parsed by the endpoint itself.

redcapAPI (R) sends every call multipart. Django's parser refuses a multipart form whose fields
pass DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), a setting of the whole site, so a 3.2 MB import failed
there while the same data form-encoded passed. The endpoint bounds its bodies itself
(views.max_body_bytes, checked on the Content-Length before anything is read), so it reads the body
whole and splits it here: fields into a QueryDict, parts with a file name into uploaded files (for
`content=file`). Too many parts is an error that knows the parameters read so far, so it can
answer in the format they ask for.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from .params import RedcapError


class TooManyPartsError(RedcapError):
    """More parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS; `fields` holds those read before."""

    def __init__(self, fields: QueryDict):
        super().__init__(
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters.", 400
        )
        self.fields = fields


def boundary_of(content_type_header: str) -> bytes:
    for piece in content_type_header.split(";")[1:]:
        name, _, value = piece.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip():
            return value.strip().strip('"').encode("latin-1")
    raise RedcapError("The multipart request has no boundary in its Content-Type.")


def parse_multipart(body: bytes, boundary: bytes, encoding: str) -> tuple[QueryDict, MultiValueDict]:
    """(fields, files) of a multipart/form-data body (RFC 7578)."""
    fields = QueryDict(mutable=True, encoding=encoding)
    files: MultiValueDict = MultiValueDict()
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start == -1:
        raise RedcapError("The multipart request's body does not contain its boundary.")
    count = 0
    while True:
        start += len(delimiter)
        if body[start : start + 2] == b"--":
            break  # the closing delimiter
        end = body.find(b"\r\n" + delimiter, start)
        if end == -1:
            raise RedcapError("The multipart request's body ends before its closing boundary.")
        count += 1
        if count > settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:
            fields._mutable = False
            raise TooManyPartsError(fields)
        _add_part(body[start:end], fields, files, encoding)
        start = end + 2
    fields._mutable = False
    return fields, files


def head_fields(head: bytes, boundary: bytes, encoding: str) -> QueryDict:
    """The fields of the parts that end within `head`, the first bytes of a longer body."""
    delimiter = b"\r\n--" + boundary
    cut = head.rfind(delimiter)
    if cut <= 0:
        return QueryDict(encoding=encoding)
    try:
        return parse_multipart(head[:cut] + delimiter + b"--", boundary, encoding)[0]
    except TooManyPartsError as exc:
        return exc.fields


def _add_part(part: bytes, fields: QueryDict, files: MultiValueDict, encoding: str) -> None:
    part = part[2:] if part.startswith(b"\r\n") else part
    head, separator, content = part.partition(b"\r\n\r\n")
    if not separator:
        raise RedcapError("A part of the multipart request has no blank line after its headers.")
    disposition, content_type = "", "application/octet-stream"
    for line in head.decode("utf-8", errors="replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            disposition = value
        elif name.strip().lower() == "content-type":
            content_type = value.strip()
    params = _disposition_params(disposition)
    if "name" not in params:
        return  # a part that is not a form field (RFC 7578 §4.2): ignored, as Django does
    if "filename" in params:
        if params["filename"]:
            files.appendlist(params["name"], SimpleUploadedFile(params["filename"], content, content_type))
        return
    fields.appendlist(params["name"], content.decode(encoding, errors="replace"))


def _disposition_params(disposition: str) -> dict[str, str]:
    params = {}
    for piece in disposition.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        params[key.strip().lower()] = value
    return params
