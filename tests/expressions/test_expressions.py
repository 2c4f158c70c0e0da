"""The expression language: the shared vectors, parse errors, and what an expression reads."""

import json
import math

import pytest

from capture.definitions.expressions import ExpressionError, evaluate, events_used, fields_used, parse
from tests.conftest import ROOT

VECTORS = json.loads((ROOT / "fixtures" / "expressions" / "vectors.json").read_text())


def same(result, expected) -> bool:
    """Equal as the browser test judges it: booleans exactly, numbers within 1e-9, text exactly."""
    if isinstance(expected, bool) or isinstance(result, bool):
        return result is expected
    if isinstance(expected, int | float) and isinstance(result, int | float):
        return math.isclose(result, expected, rel_tol=1e-9, abs_tol=1e-9)
    return type(result) is type(expected) and result == expected


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["expression"])
def test_shared_vector_gives_the_expected_value(case):
    result = evaluate(
        case["expression"],
        case["data"],
        events=case.get("events"),
        missing_codes=frozenset(case.get("missing_codes", VECTORS["missing_codes"])),
    )
    assert same(result, case["expected"]), (
        f"{case['expression']} gave {result!r}, expected {case['expected']!r}"
    )


def test_ast_is_plain_json_so_the_browser_can_run_it():
    ast = parse("[sex] = '2' and datediff([a], [b], 'y') > 18")
    assert json.loads(json.dumps(ast)) == ast


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("[age] >", "ends too early", 7),
        ("[age] > 'x", "close the string", 8),
        ("age > 3", "'age' is a bare word; write a field in brackets ([age])", 0),
        ("frobnicate([a])", "unknown function frobnicate()", 0),
        ("round(1, 2, 3)", "round() takes 1 to 2 argument(s), not 3", 0),
        ("datediff([a], [b], 'weeks')", "unit 'weeks' is unknown", 0),
        ("[a] = = 1", "unexpected '='", 6),
        ("  ", "empty", 0),
    ],
)
def test_parse_errors_say_where_and_what(expression, message, position):
    with pytest.raises(ExpressionError) as caught:
        parse(expression)
    assert message in caught.value.message
    assert caught.value.position == position
    assert f"at character {position + 1}" in str(caught.value)


def test_fields_used_lists_every_field_read_including_other_events_and_checkboxes():
    expression = "[a] + [baseline][b] + sum([c(2)], [a])"
    assert fields_used(expression) == {"a", "b", "c"}
    assert events_used(expression) == {"baseline"}


def test_keywords_are_case_insensitive_and_function_names_too():
    assert evaluate("[a] = '1' AND NOT [b] = '1' Or ROUND(1.4) = 1", {"a": "1", "b": "1"}) is True


def test_today_is_accepted_by_datediff():
    assert evaluate("datediff('2000-01-01', 'today', 'y') > 20", {}) is True
