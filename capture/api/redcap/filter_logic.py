"""REDCap's filterLogic: Capture's expression language plus what REDCap adds in a filter.

The language (capture/definitions/expressions.py) is shared with the entry page's browser
interpreter, so what only filters need is added here, on the filter's own text and AST:

- the smart variables `[record-name]` (the row's record id) and `[event-name]` (the row's unique
  event name; `[event-name][field]` is the row's own event, i.e. `[field]`);
- `isnumber(x)` and `isinteger(x)`, written as the language's own nodes: `x` is not blank and
  equals `x + 0` (a number, as `[age] + 0` is blank for text), and for an integer also `round(x)`.

A row's values also carry each of its forms' `<form>_complete` (records.py); a form without data
has none, so `[form_complete] = ''` finds gray forms, as in REDCap.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from capture.definitions import expressions

from .params import RedcapError

RECORD_NAME = "__record_name"
EVENT_NAME = "__event_name"
# The carrier of a filter-only function through the language's parser: concat('<marker>', x).
_MARKER = "__capture_filter_fn:"
_STRING = re.compile(r"""('[^']*'|"[^"]*")""")
_SMART: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\[event-name\]\s*(?=\[)", re.IGNORECASE), ""),
    (re.compile(r"\[record-name\]", re.IGNORECASE), f"[{RECORD_NAME}]"),
    (re.compile(r"\[event-name\]", re.IGNORECASE), f"[{EVENT_NAME}]"),
    (
        re.compile(r"\b(isnumber|isinteger)\s*\(", re.IGNORECASE),
        lambda m: f"concat('{_MARKER}{m[1].lower()}', ",
    ),
]


def row_values(record_id_field: str, record_id: str, event_name: str) -> dict:
    """The values every row's filter sees before its forms' values."""
    return {record_id_field: record_id, RECORD_NAME: record_id, EVENT_NAME: event_name}


def parse(expression: str) -> dict:
    """The AST of a filterLogic, or a RedcapError that says what is wrong."""
    try:
        ast = expressions.parse(_rewrite(expression))
    except expressions.ExpressionError as exc:
        raise RedcapError(f"The filterLogic is not valid: {exc.message}.") from None
    except RecursionError:  # until expressions.parse reports deep nesting as an ExpressionError
        raise RedcapError("The filterLogic is not valid: it is nested too deeply.") from None
    return _expand(ast)


def holds(ast: dict, values: dict, events: dict, missing: frozenset[str]) -> bool:
    return expressions.truthy(expressions.evaluate_ast(ast, values, events=events, missing_codes=missing))


def _rewrite(expression: str) -> str:
    """The filter's text with smart variables and filter functions spelled in the language;
    text inside quotes is left alone."""
    pieces = _STRING.split(expression)
    for i in range(0, len(pieces), 2):  # even pieces are outside quotes
        for pattern, replacement in _SMART:
            pieces[i] = pattern.sub(replacement, pieces[i])
    return "".join(pieces)


def _expand(node: dict) -> dict:
    """A copy of the (cached, read-only) AST with each carried filter function made of nodes."""
    node = dict(node)
    for key in ("a", "b"):
        if key in node:
            node[key] = _expand(node[key])
    if "args" in node:
        node["args"] = [_expand(arg) for arg in node["args"]]
    args = node.get("args") or []
    if node.get("t") == "call" and node["fn"] == "concat" and args and args[0].get("t") == "str":
        marker = str(args[0]["v"])
        if marker.startswith(_MARKER):
            name = marker[len(_MARKER) :]
            if len(args) != 2:
                raise RedcapError(f"The filterLogic is not valid: {name}() takes 1 argument.")
            return _is_number(args[1], integer=name == "isinteger")
    return node


def _is_number(x: dict, *, integer: bool) -> dict:
    number = {
        "t": "and",
        "a": {"t": "cmp", "op": "<>", "a": x, "b": {"t": "str", "v": ""}},
        "b": {"t": "cmp", "op": "=", "a": x, "b": {"t": "bin", "op": "+", "a": x, "b": {"t": "num", "v": 0}}},
    }
    if not integer:
        return number
    whole = {"t": "cmp", "op": "=", "a": x, "b": {"t": "call", "fn": "round", "args": [x]}}
    return {"t": "and", "a": number, "b": whole}
