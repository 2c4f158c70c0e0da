"""The REDCap endpoint refuses what it will not read cheaply, and in REDCap's error format (never
Django's HTML 400 page): a wrong or missing token is refused on the body's first bytes, a body over
the limit on its Content-Length, and Django's own refusals (too many fields, too large a form)
become REDCap errors."""

from __future__ import annotations

import json
from io import IOBase
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory

from capture.api.redcap import views as redcap_views

URL = "/redcap/api/"
FORM = "application/x-www-form-urlencoded"


class CountingStream(IOBase):
    """The request's body stream, counting the bytes the view reads from it."""

    def __init__(self, stream):
        self.stream, self.read_bytes = stream, 0

    def read(self, size=-1, /):
        data = self.stream.read(size)
        self.read_bytes += len(data)
        return data

    def readline(self, size=-1, /):
        data = self.stream.readline(size)
        self.read_bytes += len(data)
        return data


def call(body: bytes, content_type: str = FORM, **meta):
    """Run the view on `body`; returns (response, bytes of the body it read)."""
    request = RequestFactory().generic("POST", URL, body, content_type=content_type, **meta)
    request._stream = counting = CountingStream(request._stream)
    return redcap_views.redcap_api(request), counting.read_bytes


def import_body(token: str, size: int) -> bytes:
    """What PyCap sends for an import: the token and format first, then a large `data`."""
    head = urlencode({"token": token, "content": "record", "format": "json", "returnFormat": "json"})
    return f"{head}&data=".encode() + b"%5B" + b"x" * size


def test_a_large_body_with_a_bad_token_is_refused_on_its_first_bytes(db):
    response, read = call(import_body("F" * 32, 8 * 2**20))
    assert response.status_code == 403
    assert json.loads(response.content) == {"error": "You do not have permissions to use the API"}
    assert read <= redcap_views.HEAD_BYTES, f"read {read} bytes of an 8 MB body with a wrong token"


def test_a_large_body_without_a_token_in_its_head_is_refused_on_its_first_bytes(db, redcap_tokens):
    body = urlencode({"format": "json", "data": "x" * (200 * 1024), "token": redcap_tokens["admin"]}).encode()
    response, read = call(body)
    assert response.status_code == 403 and "token" in json.loads(response.content)["error"]
    assert read <= redcap_views.HEAD_BYTES


def test_a_body_over_the_limit_is_refused_before_it_is_read_even_with_a_good_token(redcap_tokens, settings):
    settings.REDCAP_API_MAX_BODY_BYTES = 2**20
    for token in (redcap_tokens["admin"], "F" * 32):  # the same answer: the limit tells nothing of the token
        response, read = call(import_body(token, 2 * 2**20))
        assert response.status_code == 413, response.content[:200]
        assert response["Content-Type"].startswith("text/xml")
        assert "<error>" in response.content.decode() and "1 MB" in response.content.decode()
        assert read == 0


def test_the_default_limit_is_64_mb(db):
    # Claimed, not sent: a body over the limit is refused on its Content-Length alone.
    response, read = call(b"token=x", CONTENT_LENGTH=str(64 * 2**20 + 1))
    assert response.status_code == 413 and "64 MB" in response.content.decode() and read == 0
    assert redcap_views.max_body_bytes() == 64 * 2**20


def test_a_good_token_and_a_body_over_the_head_still_imports(client, redcap_tokens, records):
    rows = [{"record_id": "B-0001", "redcap_event_name": "baseline_arm_1", "age": "61"}] * 2000
    body = (
        urlencode(
            {"token": redcap_tokens["admin"], "content": "record", "format": "json", "returnFormat": "json"}
        )
        + "&"
        + urlencode({"data": json.dumps(rows)})
    )
    assert len(body) > redcap_views.HEAD_BYTES
    response = client.generic("POST", URL, body.encode(), content_type=FORM)
    assert response.status_code == 200, response.content[:300]
    assert json.loads(response.content) == {"count": 1}


@pytest.mark.redcap("record", "export")
@pytest.mark.parametrize("encoding", ["multipart", "form"])
def test_too_many_fields_is_a_redcap_error_in_the_asked_format(client, redcap_tokens, settings, encoding):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    params = {"token": redcap_tokens["admin"], "content": "record", "format": "json"}
    params |= {f"fields[{i}]": "age" for i in range(20)}
    if encoding == "multipart":
        response = client.post(URL, params)
    else:
        response = client.generic("POST", URL, urlencode(params).encode(), content_type=FORM)
    assert response.status_code == 400
    # The parameters read before the limit ask for JSON: the error answers in it, never in HTML.
    assert response.json() == {"error": "The request has more than 10 parameters."}


@pytest.mark.redcap("record", "import")
def test_a_multipart_import_past_djangos_memory_limit_is_read(client, redcap_tokens, records):
    """redcapAPI sends every call multipart, in this order; 3.2 MB of CSV passed Django's 2.5 MB
    DATA_UPLOAD_MAX_MEMORY_SIZE, which answered an HTML 400."""
    rows = "A-0001,baseline_arm_1,,,55\n" * 125_000  # one record's row, many times over
    data = "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,age\n" + rows
    assert len(data) > 3.2 * 2**20
    body = {
        "token": redcap_tokens["admin"],
        "content": "record",
        "format": "csv",
        "type": "flat",
        "overwriteBehavior": "normal",
        "returnContent": "count",
        "returnFormat": "csv",
        "data": data,
    }
    response = client.post(URL, body)  # the test client sends multipart/form-data
    assert response.status_code == 200, response.content[:300]
    assert response.content == b"1"
    records["a_demo"].refresh_from_db()
    assert records["a_demo"].data["age"] == 55


def test_a_multipart_body_keeps_its_files_for_the_endpoint(rf, db):
    from django.core.files.uploadedfile import SimpleUploadedFile

    request = rf.post(URL, {"token": "x", "content": "file", "file": SimpleUploadedFile("a.png", b"\x89PNG")})
    params = redcap_views._params(request)
    assert params["content"] == "file" and request.FILES["file"].read() == b"\x89PNG"


def multipart_import(token: str, size: int) -> tuple[bytes, str]:
    """What redcapAPI sends: every parameter a part, the token first, then a large `data`."""
    boundary = "----capture-test"
    parts = [("token", token), ("content", "record"), ("format", "json"), ("returnFormat", "json")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n[' + "x" * size
    body += f"\r\n--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def test_a_large_multipart_body_with_a_bad_token_is_refused_on_its_first_bytes(db):
    body, content_type = multipart_import("F" * 32, 8 * 2**20)
    response, read = call(body, content_type)
    assert response.status_code == 403
    assert json.loads(response.content) == {"error": "You do not have permissions to use the API"}
    assert read <= redcap_views.HEAD_BYTES, f"read {read} bytes of an 8 MB body with a wrong token"


def test_a_large_multipart_body_with_a_good_token_is_read_whole(redcap_tokens):
    body, content_type = multipart_import(redcap_tokens["admin"], 3 * 2**20)
    response, read = call(body, content_type)
    assert response.status_code == 400 and "JSON" in json.loads(response.content)["error"]
    assert read == len(body)
