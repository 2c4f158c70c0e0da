"""The expression language of branching logic and calculated fields (REDCap's syntax).

    [sex] = '2' and [age] >= 18
    [symptoms(pain)] = '1'                 checkbox: '1' when the code is ticked, else '0'
    [baseline][weight] - [weight]          a value of another event of the same subject
    round([weight] / ([height] / 100) ^ 2, 1)
    datediff([dob], [visit_date], 'y')

`parse` turns an expression into one AST made of plain dicts and lists (JSON), so the
server and the browser evaluate the same tree: the data-entry page ships the ASTs and
`capture/records/static/records/expr.js` interprets them. If you change a rule here,
change it there too; `fixtures/expressions/vectors.json` runs in both and proves they agree.

Semantics, following REDCap:
- a blank value ('' or no value) is blank, never zero: arithmetic with a blank is blank,
  an ordering comparison with a blank is false, `[x] = ''` is true when `[x]` is blank;
- numbers and numeric strings compare as numbers ('10' > '9'), other text as text;
- a study's missing-data code (e.g. 'UNK') is kept as text: `[x] = 'UNK'` works, and it
  counts as blank in arithmetic, ordering comparisons and sum/mean/min/max;
- a field of a repeating group named outside its row is the list of its values, which
  sum/mean/min/max take whole (`sum([lesion_diameter])`);
- division by zero, the square root of a negative number, or a date that is not a date
  give blank, not an error: a form must keep working while it is half filled in.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

__all__ = ["ExpressionError", "evaluate", "evaluate_ast", "events_used", "fields_used", "parse"]

BLANK = ""

# name: (fewest arguments, most arguments or None for any number)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "datediff": (2, 5),
    "if": (3, 3),
    "round": (1, 2),
    "roundup": (1, 2),
    "rounddown": (1, 2),
    "sum": (1, None),
    "mean": (1, None),
    "min": (1, None),
    "max": (1, None),
    "abs": (1, 1),
    "sqrt": (1, 1),
    "isblankormissingcode": (1, 1),
    "contains": (2, 2),
    "concat": (1, None),
    "year": (1, 1),
    "month": (1, 1),
    "day": (1, 1),
}

# Seconds per datediff unit; REDCap's year and month are average lengths.
UNITS = {"y": 365.2425 * 86400, "M": 30.44 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}

_NUMERIC = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_FIELD = re.compile(r"^\[(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\((?P<code>[^)]*)\))?\]$")
_CMP = {"==": "=", "!=": "<>"}


class ExpressionError(ValueError):
    """An expression that does not parse. `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int, expression: str = ""):
        self.message = message
        self.position = position
        self.expression = expression
        super().__init__(f"{message} (at character {position + 1})")


class ExpressionTooDeepError(ExpressionError):
    """Nested past what the parser can follow (thousands of brackets or 'not's)."""


@functools.cache
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("expressions.lark")).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", maybe_placeholders=False, propagate_positions=False)


@v_args(inline=True)
class _ToAst(Transformer):
    def number(self, token: Token) -> dict:
        return {"t": "num", "v": _normal(float(token))}

    def string(self, token: Token) -> dict:
        return {"t": "str", "v": str(token)[1:-1]}

    def true(self, _token) -> dict:
        return {"t": "bool", "v": True}

    def false(self, _token) -> dict:
        return {"t": "bool", "v": False}

    def field(self, first: Token, second: Token | None = None) -> dict:
        event = None
        if second is not None:
            head = _FIELD.match(str(first))
            assert head is not None
            if head["code"] is not None:
                raise ExpressionError(
                    f"{first} names an event and cannot carry a checkbox code; write [event][field(code)]",
                    first.start_pos or 0,
                )
            event, first = head["name"], second
        match = _FIELD.match(str(first))
        assert match is not None
        return {"t": "field", "f": match["name"], "c": match["code"], "e": event}

    def call(self, name: Token, *args) -> dict:
        fn = str(name).lower()
        if fn not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {name}(); use one of {known}", name.start_pos or 0)
        least, most = FUNCTIONS[fn]
        arguments = [a for a in args if a is not None]
        if len(arguments) < least or (most is not None and len(arguments) > most):
            wanted = f"{least}" if least == most else f"{least} to {most}" if most else f"at least {least}"
            raise ExpressionError(
                f"{fn}() takes {wanted} argument(s), not {len(arguments)}", name.start_pos or 0
            )
        if (
            fn == "datediff"
            and len(arguments) >= 3
            and arguments[2]["t"] == "str"
            and arguments[2]["v"] not in UNITS
        ):
            raise ExpressionError(
                f"datediff() unit {arguments[2]['v']!r} is unknown; use one of {', '.join(UNITS)}",
                name.start_pos or 0,
            )
        return {"t": "call", "fn": fn, "args": arguments}

    def compare(self, a, op: Token, b) -> dict:
        return {"t": "cmp", "op": _CMP.get(str(op), str(op)), "a": a, "b": b}

    def arith(self, a, op: Token, b) -> dict:
        return {"t": "bin", "op": str(op), "a": a, "b": b}

    def pow(self, a, b) -> dict:
        return {"t": "bin", "op": "^", "a": a, "b": b}

    def neg(self, a) -> dict:
        return {"t": "neg", "a": a}

    def and_op(self, a, _token, b) -> dict:
        return {"t": "and", "a": a, "b": b}

    def or_op(self, a, _token, b) -> dict:
        return {"t": "or", "a": a, "b": b}

    def not_op(self, _token, a) -> dict:
        return {"t": "not", "a": a}


def _describe(error: UnexpectedInput, expression: str) -> ExpressionError:
    if isinstance(error, UnexpectedEOF):
        return ExpressionError(
            "the expression ends too early; is a bracket, quote or argument missing?",
            len(expression),
            expression,
        )
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream or 0
        char = expression[pos] if pos < len(expression) else ""
        hint = ""
        if char in "'\"":
            hint = "; close the string with the same quote"
        elif char == "[":
            hint = "; a field is written [name] or [name(code)]"
        return ExpressionError(f"unexpected {char!r}{hint}", pos, expression)
    if isinstance(error, UnexpectedToken):
        token = error.token
        pos = token.start_pos if token.start_pos is not None else len(expression)
        if token.type == "$END":
            return ExpressionError(
                "the expression ends too early; is a bracket or an operand missing?",
                len(expression),
                expression,
            )
        if token.type == "NAME":
            return ExpressionError(
                f"unexpected word {str(token)!r}; fields are written in brackets, e.g. [{token}], "
                "and functions with parentheses",
                pos,
                expression,
            )
        bare = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", expression[:pos])
        if bare and bare[1].lower() not in ("and", "or", "not", "true", "false"):
            return ExpressionError(
                f"{bare[1]!r} is a bare word; write a field in brackets ([{bare[1]}]) "
                "or a text in quotes ('{bare[1]}')",
                bare.start(1),
                expression,
            )
        return ExpressionError(f"unexpected {str(token)!r}", pos, expression)
    return ExpressionError(str(error), getattr(error, "pos_in_stream", 0) or 0, expression)


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> dict:
    """The AST of `expression` (a dict tree; treat it as read-only, it is cached).

    Raises ExpressionError with the position of the problem and a plain message."""
    if not expression or not expression.strip():
        raise ExpressionError("the expression is empty", 0, expression)
    try:
        tree = _parser().parse(expression)
        return _ToAst().transform(tree)
    except UnexpectedInput as error:
        raise _describe(error, expression) from None
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionTooDeepError("the expression is nested too deeply", 0, expression) from None
    except Exception as error:  # lark wraps errors raised inside the transformer
        inner = getattr(error, "orig_exc", None)
        if isinstance(inner, ExpressionError):
            inner.expression = expression
            raise inner from None
        if isinstance(inner, RecursionError):
            raise ExpressionTooDeepError("the expression is nested too deeply", 0, expression) from None
        raise


def _walk(node):
    yield node
    for key in ("a", "b"):
        if key in node:
            yield from _walk(node[key])
    for arg in node.get("args", ()):
        yield from _walk(arg)


def fields_used(expression: str) -> set[str]:
    """Names of the fields the expression reads (with or without an event prefix)."""
    return {n["f"] for n in _walk(parse(expression)) if n["t"] == "field"}


def events_used(expression: str) -> set[str]:
    """Names of the events the expression reads from, as in [event][field]."""
    return {n["e"] for n in _walk(parse(expression)) if n["t"] == "field" and n["e"]}


# ---------------------------------------------------------------------------- evaluation


def evaluate(
    expression: str,
    values: dict,
    *,
    events: dict[str, dict] | None = None,
    missing_codes: frozenset[str] = frozenset(),
) -> object:
    """Evaluate `expression` on a record's `values` (item name -> stored value).

    Returns a bool (logic and comparisons), an int or float, a str, or '' for blank."""
    return evaluate_ast(parse(expression), values, events=events, missing_codes=missing_codes)


def evaluate_ast(
    ast: dict, values: dict, *, events: dict[str, dict] | None = None, missing_codes=frozenset()
) -> object:
    return _Evaluator(values, events or {}, frozenset(missing_codes)).run(ast)


def is_blank(value) -> bool:
    return value is None or value == "" or value == []


def _normal(number: float):
    """A float as REDCap and JavaScript show it: whole numbers without '.0'; NaN/inf are blank."""
    if not math.isfinite(number):
        return BLANK
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def to_text(value) -> str:
    if is_blank(value):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        normal = _normal(float(value))
        return str(normal) if normal != BLANK else ""
    if isinstance(value, list):
        return ",".join(to_text(v) for v in value)
    return str(value)


def truthy(value) -> bool:
    if is_blank(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str) and _NUMERIC.match(value):
        return float(value) != 0
    return True


def _scalar(value):
    if isinstance(value, list):
        if not value:
            return BLANK
        if len(value) == 1:
            return value[0]
    return value


class _Evaluator:
    def __init__(self, values: dict, events: dict, missing: frozenset[str]):
        self.values = values
        self.events = events
        self.missing = missing

    def run(self, node):
        return getattr(self, "_" + node["t"])(node)

    # -- conversions

    def num(self, value) -> float | None:
        """A number, or None for blank, missing codes and text that is not a number."""
        value = _scalar(value)
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, str) and value not in self.missing and _NUMERIC.match(value):
            number = float(value)
            return number if math.isfinite(number) else None  # '1e400' is no number we can use
        return None

    def numbers(self, args) -> list[float]:
        found = []
        for arg in args:
            value = self.run(arg)
            for item in value if isinstance(value, list) else [value]:
                number = self.num(item)
                if number is not None:
                    found.append(number)
        return found

    # -- nodes

    def _num(self, node):
        return node["v"]

    def _str(self, node):
        return node["v"]

    def _bool(self, node):
        return node["v"]

    def _field(self, node):
        source = self.events.get(node["e"], {}) if node["e"] else self.values
        value = source.get(node["f"])
        if node["c"] is not None:
            if isinstance(value, list):
                return "1" if node["c"] in [str(v) for v in value] else "0"
            return "1" if value is not None and str(value) == node["c"] else "0"
        return BLANK if value is None else value

    def _neg(self, node):
        number = self.num(self.run(node["a"]))
        return BLANK if number is None else _normal(-number)

    def _bin(self, node):
        a, b = self.num(self.run(node["a"])), self.num(self.run(node["b"]))
        if a is None or b is None:
            return BLANK
        op = node["op"]
        try:
            if op == "+":
                return _normal(a + b)
            if op == "-":
                return _normal(a - b)
            if op == "*":
                return _normal(a * b)
            if op == "/":
                return BLANK if b == 0 else _normal(a / b)
            result = a**b
            return BLANK if isinstance(result, complex) else _normal(result)
        except (OverflowError, ZeroDivisionError):
            return BLANK

    def _cmp(self, node):
        a, b = _scalar(self.run(node["a"])), _scalar(self.run(node["b"]))
        op = node["op"]
        ordering = op not in ("=", "<>")
        if ordering:
            # A missing-data code is no number: `[age] > 18` is false for 'UNK', not a text comparison.
            a = BLANK if isinstance(a, str) and a in self.missing else a
            b = BLANK if isinstance(b, str) and b in self.missing else b
        blank_a, blank_b = is_blank(a), is_blank(b)
        if blank_a or blank_b:
            if op == "=":
                return blank_a and blank_b
            if op == "<>":
                return not (blank_a and blank_b)
            return False
        na, nb = self.num(a), self.num(b)
        if na is not None and nb is not None:
            x, y = na, nb
        else:
            x, y = to_text(a), to_text(b)
        if op == "=":
            return x == y
        if op == "<>":
            return x != y
        if op == "<":
            return x < y
        if op == "<=":
            return x <= y
        if op == ">":
            return x > y
        return x >= y

    def _and(self, node):
        return truthy(self.run(node["a"])) and truthy(self.run(node["b"]))

    def _or(self, node):
        return truthy(self.run(node["a"])) or truthy(self.run(node["b"]))

    def _not(self, node):
        return not truthy(self.run(node["a"]))

    def _call(self, node):
        fn, args = node["fn"], node["args"]
        if fn == "if":
            return self.run(args[1]) if truthy(self.run(args[0])) else self.run(args[2])
        if fn in ("sum", "mean", "min", "max"):
            found = self.numbers(args)
            if not found:
                return BLANK
            if fn in ("sum", "mean"):
                try:
                    total = math.fsum(found)
                except (OverflowError, ValueError):  # past the float range: blank, as in the browser
                    return BLANK
                return _normal(total if fn == "sum" else total / len(found))
            return _normal(min(found) if fn == "min" else max(found))
        if fn == "concat":
            return "".join(to_text(_scalar(self.run(a))) for a in args)
        if fn == "contains":
            hay, needle = (to_text(_scalar(self.run(a))) for a in args)
            return needle.lower() in hay.lower()
        if fn == "isblankormissingcode":
            value = _scalar(self.run(args[0]))
            return is_blank(value) or (isinstance(value, str) and value in self.missing)
        if fn == "datediff":
            return self._datediff(args)
        if fn in ("year", "month", "day"):
            moment = _moment(to_text(_scalar(self.run(args[0]))), "ymd")
            return BLANK if moment is None else getattr(moment, fn)
        number = self.num(self.run(args[0]))
        if number is None:
            return BLANK
        if fn == "abs":
            return _normal(abs(number))
        if fn == "sqrt":
            return BLANK if number < 0 else _normal(math.sqrt(number))
        places = self.num(self.run(args[1])) if len(args) > 1 else 0.0
        if places is None:
            return BLANK
        return _round(number, int(places), fn)

    def _datediff(self, args):
        values = [self.run(a) for a in args]
        unit = to_text(values[2]) if len(values) > 2 else "d"
        fmt, signed = "ymd", False
        for extra in values[3:]:
            text = to_text(extra)
            if text.lower() in ("ymd", "mdy", "dmy"):
                fmt = text.lower()
            else:
                signed = truthy(extra) and text.lower() != "false"
        if unit not in UNITS:
            return BLANK
        first = _moment(to_text(_scalar(values[0])), fmt)
        second = _moment(to_text(_scalar(values[1])), fmt)
        if first is None or second is None:
            return BLANK
        difference = (second - first).total_seconds() / UNITS[unit]
        return _normal(difference if signed else abs(difference))


_DATE = re.compile(
    r"^(?P<a>\d{1,4})-(?P<b>\d{1,2})-(?P<c>\d{1,4})(?:[ T](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?$"
)


def _moment(text: str, fmt: str) -> dt.datetime | None:
    """A date or date-time typed as Y-M-D (or M-D-Y / D-M-Y with that format); 'today' is today."""
    text = text.strip()
    if text.lower() in ("today", "now"):
        now = dt.datetime.now()  # noqa: DTZ005 - REDCap's 'today' is the local calendar day, naive on both sides
        return now.replace(hour=0, minute=0, second=0, microsecond=0) if text.lower() == "today" else now
    match = _DATE.match(text.replace("/", "-"))
    if not match:
        return None
    a, b, c = int(match["a"]), int(match["b"]), int(match["c"])
    year, month, day = (a, b, c) if fmt == "ymd" else (c, a, b) if fmt == "mdy" else (c, b, a)
    try:
        return dt.datetime(  # noqa: DTZ001 - form dates carry no zone; differences are calendar differences
            year, month, day, int(match["h"] or 0), int(match["mi"] or 0), int(match["s"] or 0)
        )
    except ValueError:
        return None


_ROUNDING = {"round": ROUND_HALF_UP, "roundup": ROUND_UP, "rounddown": ROUND_DOWN}


def _round(number: float, places: int, fn: str):
    # Decimal on the shortest text of the float, as the browser does with Number('…e2'):
    # round(1.005, 2) is 1.01 in both, where binary arithmetic would give 1.0.
    try:
        exact = Decimal(repr(number))
        rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=_ROUNDING[fn])
    except InvalidOperation:
        return BLANK
    return _normal(float(rounded))
