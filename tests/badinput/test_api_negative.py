"""schemathesis in negative mode: requests that break the OpenAPI schema (wrong types, missing
fields, malformed bodies and parameters) against a live server. None may be a server error.
Runs as the study administrator, who may call every operation, so the requests reach the
parsers and serializers instead of stopping at a permission check."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from capture.api import tokens

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 5


def test_requests_that_break_the_schema_are_never_server_errors(live_server, personas, subjects, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    token = tokens.create_api_token(user=personas["admin"], name="negative")[1]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    tried = {}
    for operation in operations:
        tried[operation.label] = _fuzz(operation, live_server.url, {"Authorization": f"Token {token}"})
    # An operation with no parameter and no body (GET /me/) has no request that breaks the schema.
    for label in ("PUT /api/v1/studies/{slug}/subjects/{subject_id}/records/{event}/{form}/{instance}/",
                  "POST /api/v1/studies/{slug}/subjects/"):  # fmt: skip
        assert tried.get(label), f"{label} was not fuzzed: {tried}"


def _fuzz(operation, base_url: str, headers: dict) -> int:
    calls = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def check(case):
        calls.append(case)
        case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error])

    try:
        check()
    except Unsatisfiable:
        return 0
    return len(calls)
