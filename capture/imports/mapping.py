"""How a sheet's columns become form values: the mapping, its column objects and cell cleaning.

A mapping is plain JSON (saved per study in `ImportMapping.spec`, reused for the next file from the
same site). `Mapping.from_spec` checks its shape; `resolve` checks it against the study's forms and the
sheet's headers. Each mapped column becomes an `ItemColumn` that turns a cell into the value
`capture.records.validation` expects (value map, missing-data codes, dates by declared format, Excel
serial dates, numbers as Excel stores them); the record rules themselves are applied afterwards by the
same validator as data entry, so an import accepts exactly what a form accepts.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError

DATE_FORMATS = {
    "DMY": "day/month/year (31/10/98, 31.10.1998)",
    "MDY": "month/day/year (10/31/98, 10/31/1998)",
    "YMD": "year-month-day (1998-10-31)",
    "auto": "not declared: ISO dates, and others only where day and month cannot be confused",
}
DEFAULT_MISSING = {"n/a": "NA", "N/A": "NA", "NA": "NA", "Unknown": "UNK", "unknown": "UNK", "-9": "UNK"}
TRUE_CELLS = {"1", "1.0", "true", "yes", "y", "checked", "x"}
FALSE_CELLS = {"0", "0.0", "false", "no", "n", "unchecked", ""}
BOOLEAN_CELLS = {"y": "1", "yes": "1", "true": "1", "1": "1", "n": "0", "no": "0", "false": "0", "0": "0"}
MEMO_LIMIT = 100_000  # cleaned values remembered per column (bounded memory)
_EXCEL_EPOCH = dt.date(1899, 12, 30)  # Excel's 1900 date system, past its 1900-02-29 bug
_DATE_SPLIT = re.compile(r"^\s*(\d{1,4})[/.\-\s](\d{1,2})[/.\-\s](\d{1,4})\s*$")


# Factors from a column's unit to an element's unit (exact by definition where one exists).
UNIT_FACTORS = {
    ("lb", "kg"): Decimal("0.45359237"),
    ("g", "kg"): Decimal("0.001"),
    ("kg", "g"): Decimal("1000"),
    ("in", "cm"): Decimal("2.54"),
    ("ft", "cm"): Decimal("30.48"),
    ("m", "cm"): Decimal("100"),
    ("cm", "m"): Decimal("0.01"),
    ("mm", "cm"): Decimal("0.1"),
    ("cm", "mm"): Decimal("10"),
    ("m", "mm"): Decimal("1000"),
    ("mg/dl", "mmol/l"): None,  # depends on the analyte: refuse rather than guess
}


def unit_factor(source: str, target: str) -> Decimal | None:
    """The factor from `source` to `target` unit, or None when Capture knows no safe conversion."""
    source, target = source.strip().lower(), target.strip().lower()
    if source == target:
        return Decimal(1)
    return UNIT_FACTORS.get((source, target))


class CellError(ValueError):
    """A cell that cannot become a value; the message is the reason shown in the report."""


@dataclass
class ColumnSpec:
    column: str  # the header text
    form: str
    item: str
    values: dict[str, str] = field(default_factory=dict)  # legacy value → code
    code: str = ""  # a REDCap-style checkbox column "race___2": this column says whether code "2" is ticked
    row: int = 1  # for an item of a repeating group: which group row this column fills
    date_format: str = ""  # overrides the mapping's date format for this column
    unit: str = ""  # the column's unit when it differs from the element's ("lb" into a kg item)

    def to_spec(self) -> dict:
        spec: dict[str, object] = {"column": self.column, "form": self.form, "item": self.item}
        if self.values:
            spec["values"] = self.values
        if self.code:
            spec["code"] = self.code
        if self.row != 1:
            spec["row"] = self.row
        if self.date_format:
            spec["date_format"] = self.date_format
        if self.unit:
            spec["unit"] = self.unit
        return spec


@dataclass
class Mapping:
    subject_column: str
    columns: list[ColumnSpec]
    event: str = ""  # a fixed event for every row …
    event_column: str = ""  # … or a column naming it
    event_values: dict[str, str] = field(default_factory=dict)  # legacy event label → event name
    instance_column: str = ""
    repeat_form_column: str = ""  # REDCap's redcap_repeat_instrument: the only form a row fills
    status_columns: dict[str, str] = field(
        default_factory=dict
    )  # form → column of 0/1/2 (REDCap <form>_complete)
    status: int = 0  # status of records the import creates
    date_format: str = "auto"
    two_digit_year_pivot: int = -1  # yy ≤ pivot → 20yy, else 19yy; -1: this year's last two digits
    missing_values: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MISSING))
    overwrite: bool = False  # REDCap's "overwrite": a blank cell clears the stored value
    # Bulk enrolment (enrol.py): subjects not yet in the study are enrolled from the sheet.
    enrol: bool = False
    site_column: str = ""  # the column naming each new subject's site (code or name) …
    site: str = ""  # … or the code of the site they all go to
    enrolment_date_column: str = ""  # else the import date
    key_kind: str = "mrn"  # the identifier kind the sheet's key is kept as (ids by pattern)
    sheet: str = ""
    header_row: int = 1
    header_rows: int = 1
    delimiter: str = ""
    encoding: str = ""

    SCALARS = (
        "subject_column",
        "event",
        "event_column",
        "instance_column",
        "repeat_form_column",
        "status",
        "date_format",
        "two_digit_year_pivot",
        "overwrite",
        "enrol",
        "site_column",
        "site",
        "enrolment_date_column",
        "key_kind",
        "sheet",
        "header_row",
        "header_rows",
        "delimiter",
        "encoding",
    )

    @classmethod
    def from_spec(cls, spec: dict) -> Mapping:
        if not isinstance(spec, dict):
            raise ValidationError("A mapping is a JSON object.")
        known = set(cls.SCALARS) | {"columns", "event_values", "status_columns", "missing_values"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValidationError(
                f"Unknown mapping key(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        if not spec.get("subject_column"):
            raise ValidationError("Choose the column that holds the subject id.")
        columns = []
        for index, col in enumerate(spec.get("columns") or []):
            try:
                columns.append(ColumnSpec(**col))
            except TypeError as exc:
                raise ValidationError(f"Mapping column {index + 1}: {exc}.") from None
        kwargs = {k: spec[k] for k in cls.SCALARS if k in spec}
        mapping = cls(
            columns=columns,
            event_values=dict(spec.get("event_values") or {}),
            status_columns=dict(spec.get("status_columns") or {}),
            missing_values=dict(spec["missing_values"])
            if "missing_values" in spec
            else dict(DEFAULT_MISSING),
            **kwargs,
        )
        if mapping.date_format not in DATE_FORMATS:
            raise ValidationError(
                f"Date format {mapping.date_format!r}: use one of {', '.join(DATE_FORMATS)}."
            )
        for col in columns:
            if col.date_format and col.date_format not in DATE_FORMATS:
                raise ValidationError(f"Column {col.column!r}: date format {col.date_format!r} is unknown.")
        if mapping.status not in (0, 1, 2):
            raise ValidationError(
                "The status of imported records is 0 (incomplete), 1 (unverified) or 2 (complete)."
            )
        if bool(mapping.event) == bool(mapping.event_column):
            raise ValidationError(
                "Choose either a fixed event or the column that names the event (one of them)."
            )
        return mapping

    def to_spec(self) -> dict:
        defaults = {
            "enrol": False,
            "site_column": "",
            "site": "",
            "enrolment_date_column": "",
            "key_kind": "mrn",
        }
        # The enrolment options appear only when set: a mapping without them reads as before.
        spec = {
            k: getattr(self, k) for k in self.SCALARS if k not in defaults or getattr(self, k) != defaults[k]
        }
        spec["columns"] = [c.to_spec() for c in self.columns]
        spec["event_values"] = self.event_values
        spec["status_columns"] = self.status_columns
        spec["missing_values"] = self.missing_values
        return spec

    def reader_options(self) -> dict:
        return {
            "sheet": self.sheet,
            "header_row": self.header_row,
            "header_rows": self.header_rows,
            "delimiter": self.delimiter,
            "encoding": self.encoding,
        }

    def pivot(self) -> int:
        if self.two_digit_year_pivot >= 0:
            return self.two_digit_year_pivot
        return dt.date.today().year % 100  # noqa: DTZ011 - a calendar year is all that matters here


# ---------------------------------------------------------------------------------------------- cells


def parse_date(raw, fmt: str, pivot: int) -> str:
    """A cell as an ISO date. Numbers are Excel serial dates; text follows the declared format."""
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat()
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if isinstance(raw, bool):
        raise CellError(f"{raw!r} is not a date")
    if isinstance(raw, int | float):
        return excel_serial(raw)
    text = str(raw).strip()
    order, parts = _split_date(text, fmt)
    day, month, year = _in_order(text, order, *parts)
    return _iso_date(text, order, day, month, year, pivot)


def _split_date(text: str, fmt: str) -> tuple[str, tuple[str, str, str]]:
    """(the order the parts are in, the three parts as written). A four-digit first part is a year
    whatever the declared format, so ISO dates are never misread."""
    order = "YMD" if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text) else fmt
    match = _DATE_SPLIT.match(text)
    if not match:
        if re.fullmatch(r"\d+(\.\d+)?", text) and fmt != "YMD":
            raise CellError(
                f"{text!r} is a number, not a date; if it is an Excel serial date, format the column as a date in Excel"
            )
        raise CellError(f"{text!r} is not a date in the declared format ({DATE_FORMATS.get(fmt, fmt)})")
    first, second, third = match.groups()
    return ("YMD" if len(first) == 4 else order), (first, second, third)


def _in_order(text: str, order: str, a: str, b: str, c: str) -> tuple[str, str, str]:
    """(day, month, year) of the parts a, b, c written in `order`."""
    if order == "YMD":
        return c, b, a
    if order == "DMY":
        return a, b, c
    if order == "MDY":
        return b, a, c
    # auto: only where the order cannot be mistaken
    x, y = int(a), int(b)
    if x > 12 >= y:
        return a, b, c
    if y > 12 >= x:
        return b, a, c
    raise CellError(
        f"{text!r} is ambiguous: it could be day/month or month/day. Declare the column's date format "
        "(D/M/Y or M/D/Y) in the mapping"
    )


def _iso_date(text: str, order: str, day: str, month: str, year: str, pivot: int) -> str:
    if len(year) > 4 or len(year) == 3:
        raise CellError(f"{text!r}: the year {year!r} is not valid")
    y = int(year)
    if len(year) <= 2:
        y += 2000 if y <= pivot else 1900
    try:
        return dt.date(y, int(month), int(day)).isoformat()
    except ValueError:
        label = {"DMY": "D/M/Y", "MDY": "M/D/Y", "YMD": "Y-M-D"}.get(order, order)
        raise CellError(
            f"{text!r} is not a valid {label} date (day {day}, month {month}); is the column's date format right?"
        ) from None


def excel_serial(number: float) -> str:
    if not 1 <= number < 2958466:
        raise CellError(f"{number!r} is not an Excel date serial number")
    return (_EXCEL_EPOCH + dt.timedelta(days=int(number))).isoformat()


def number_text(raw) -> str:
    """Excel stores every number as a float: 54.0 is the integer 54; 69.96 must stay 69.96."""
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, float):
        if raw.is_integer():
            return str(int(raw))
        text = repr(raw)  # the shortest text that reads back as the same float: 69.96, 0.1
        return text if "e" not in text else format(Decimal(text).normalize(), "f")
    return str(raw)


@dataclass
class ItemColumn:
    """One mapped column, resolved against its form item: cleans one cell at a time."""

    spec: ColumnSpec
    index: int  # position in the sheet
    letter: str
    datatype: str
    multiple: bool
    codes: dict[str, str]
    group: str | None
    date_format: str
    pivot: int
    missing: dict[str, str]
    missing_codes: set[str]
    factor: Decimal | None = None  # unit conversion, when the column's unit differs from the element's
    places: int | None = None  # the element's decimal places, for rounding a converted value

    def __post_init__(self):
        self._memo: dict = {}
        # Most columns need no value map, code or date handling: they take the fast path in clean().
        self.plain = not (
            self.spec.values or self.spec.code or self.multiple or self.factor
        ) and self.datatype not in (
            "date",
            "datetime",
            "time",
            "boolean",
        )

    def clean(self, raw):
        """Return the value for the record (None for a blank), or raise CellError.

        Outcomes are remembered per plain cell value: a column repeats its values (codes, numbers,
        dates, missing markers), and the same cell always cleans the same way."""
        kind = type(raw)
        if kind is str or kind is float or kind is int:
            outcome = self._memo.get((kind, raw))
            if outcome is None:
                try:
                    outcome = (True, self._clean(raw))
                except CellError as exc:
                    outcome = (False, str(exc))
                if len(self._memo) < MEMO_LIMIT:
                    self._memo[(kind, raw)] = outcome
            if outcome[0]:
                value = outcome[1]
                return list(value) if type(value) is list else value
            raise CellError(outcome[1])
        return self._clean(raw)

    def cleaning_key(self) -> tuple:
        """Everything `clean` depends on besides the cell: columns with equal keys clean every cell
        alike (their errors are prefixed with the item by the caller)."""
        spec = self.spec
        return (
            self.datatype,
            self.multiple,
            tuple(sorted(self.codes)),
            self.group,
            self.date_format,
            self.pivot,
            tuple(sorted(self.missing.items())),
            tuple(sorted(self.missing_codes)),
            self.factor,
            self.places,
            tuple(sorted(spec.values.items())),
            spec.code,
            spec.unit,
        )

    def assign(self, value, values: dict) -> None:
        """Put a cleaned value (not None) where the record keeps it: here, a field of its own
        (columns.py has the repeating group's and the checkbox code's)."""
        values[self.spec.item] = value

    def clean_uncached(self, raw):
        """`clean` for a caller that remembers outcomes itself (a checkbox's list is its own)."""
        return self._clean(raw)

    def _clean(self, raw):
        kind = type(raw)
        if kind is str:
            raw = raw.strip()
            if not raw:
                return None
        elif raw is None:
            return None
        if self.plain and (kind is str or kind is float or kind is int):
            key = raw if kind is str else number_text(raw)
            return self.missing.get(key, key)
        key = number_text(raw) if isinstance(raw, float | int) else raw
        if isinstance(key, str):
            # The value map first, then the legacy missing markers, then the study's own codes.
            mapped = _lookup(self.spec.values, key)
            if mapped is None and key in self.missing:
                return self.missing[key]
            if mapped is not None:
                raw = key = mapped
            if key in self.missing_codes:
                return key
        return self._typed(raw, key)

    def _typed(self, raw, key):
        """A cell that is not blank and not a missing-data code, as the item's kind needs it."""
        if self.factor is not None:
            return self._convert(key, self.factor)
        if self.spec.code:
            return self._ticked(raw, key)
        if self.multiple:
            tokens = [t.strip() for t in re.split(r"[,;|]", str(key)) if t.strip()]
            return sorted({_lookup(self.spec.values, t) or t for t in tokens})
        if self.datatype == "date" and not self.codes:
            return parse_date(raw, self.date_format, self.pivot)
        if isinstance(raw, dt.date | dt.time | dt.timedelta):
            return self._temporal(raw)
        if self.datatype == "boolean" and isinstance(key, str) and key.lower() in BOOLEAN_CELLS:
            return BOOLEAN_CELLS[key.lower()]
        return key if isinstance(key, str) else number_text(key)

    def _ticked(self, raw, key) -> list[str]:
        """A checkbox code column: [code] when ticked, [] when not."""
        text = str(key).strip().lower()
        if text in TRUE_CELLS:
            return [self.spec.code]
        if text in FALSE_CELLS:
            return []
        raise CellError(f"{raw!r} is not 1 or 0 (ticked or not)")

    def _temporal(self, raw) -> str:
        """A date, date-time, time or duration cell (as the reader gives them) as text."""
        if isinstance(raw, dt.datetime):
            if self.datatype == "datetime":
                return raw.isoformat(sep=" ")
            if self.datatype == "time":
                return raw.time().isoformat()
            return raw.date().isoformat() if raw.time() == dt.time() else raw.isoformat(sep=" ")
        if isinstance(raw, dt.date):
            return raw.isoformat()
        return str(raw)

    def _convert(self, key, factor: Decimal) -> str:
        try:
            number = Decimal(str(key)) * factor
        except ArithmeticError:
            raise CellError(
                f"{key!r} is not a number, so it cannot be converted from {self.spec.unit}"
            ) from None
        places = 0 if self.datatype == "integer" else self.places
        if places is not None:
            number = number.quantize(Decimal(1).scaleb(-places))
        return format(number.normalize(), "f")


def _lookup(values: dict[str, str], key: str):
    if not values:
        return None
    if key in values:
        return values[key]
    folded = key.casefold()
    for legacy, code in values.items():
        if legacy.casefold() == folded:
            return code
    return None


def parse_value_map(text: str) -> dict[str, str]:
    """'Male=2; Female=1' (or one pair a line) → {'Male': '2', 'Female': '1'}."""
    pairs = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValidationError(
                f"{part.strip()!r} in a value map needs the form legacy=code (e.g. Male=2)."
            )
        legacy, code = part.split("=", 1)
        pairs[legacy.strip()] = code.strip()
    return pairs


def format_value_map(values: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in values.items())


# ------------------------------------------------------------------------------------------ suggestions


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()


# A header that names a span of time holds a number of days (months, years), not a date, even
# when it also says "date": "Date of Birth (Days)", "Follow up duration (day)".
_TIME_SPAN = re.compile(r"\b(days?|weeks?|months?|years?|duration|interval|time)\b", re.I)
DATE_TYPES = ("date", "datetime")


@dataclass(frozen=True)
class _Text:
    """A target's text normalised once for every header: its words, and its short words. A close
    match must not differ in a short word: an acronym or code ("HPV" and "PR", "T" and "N") names
    a different thing however alike the rest reads."""

    norm: str
    words: frozenset[str]
    short: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Text:
        norm = _norm(text)
        words = frozenset(norm.split())
        return cls(norm, words, frozenset(w for w in words if len(w) <= 4))


def suggest_columns(
    headers: list[str], targets: list[dict], not_dates: set[str] | frozenset[str] = frozenset()
) -> dict[str, dict]:
    """For each header, the best matching form item, or nothing.

    `targets` are dicts with form, item, datatype and the texts to match (name, label, question,
    long name, aliases). An exact match on any text wins; otherwise a close match (difflib ratio ≥
    0.8) does, when the two agree on their short words. A header that names a span of time ("(days)",
    "duration") or is in `not_dates` (its cells are numbers) is never matched to a date item. A
    target is suggested for one header only.

    Each text is normalised once (not once per header: a 200-column sheet against the shipped
    forms' ~300 items made 110,000 normalisations a page), and difflib's cheap upper bounds skip
    a ratio that could not beat the best so far nor reach 0.8."""
    prepared = [(target, [t for t in map(_Text.of, target["texts"]) if t.norm]) for target in targets]
    scored: list[tuple[float, str, dict]] = []
    for header in headers:
        h = _norm(header)
        if not h:
            continue
        no_dates = header in not_dates or bool(_TIME_SPAN.search(h))
        best = _best_target(h, prepared, no_dates)
        if best[1] is not None and best[0] >= 0.8:
            scored.append((best[0], header, best[1]))
    suggestions: dict[str, dict] = {}
    taken: set[tuple[str, str]] = set()
    for score, header, target in sorted(scored, key=lambda s: -s[0]):
        key = (target["form"], target["item"])
        if key in taken:
            continue
        taken.add(key)
        suggestions[header] = {"form": target["form"], "item": target["item"], "score": round(score, 2)}
    return suggestions


def _best_target(
    h: str, prepared: list[tuple[dict, list[_Text]]], no_dates: bool
) -> tuple[float, dict | None]:
    """(score, target) of the first target scoring highest for the normalised header `h`; a score
    under 0.8 is not worked out exactly (it is never suggested)."""
    words = frozenset(h.split())
    short = frozenset(w for w in words if len(w) <= 4)
    matcher = difflib.SequenceMatcher(None, h, "")
    best: tuple[float, dict | None] = (0.0, None)
    for target, texts in prepared:
        if no_dates and target.get("datatype") in DATE_TYPES:
            continue
        for t in texts:
            if h == t.norm:
                if best[0] < 1.0:
                    best = (1.0, target)
                continue
            if not (short <= t.words and t.short <= words):  # they differ in a short word
                continue
            matcher.set_seq2(t.norm)
            floor = max(best[0], 0.8 - 1e-9)
            if matcher.real_quick_ratio() <= floor or matcher.quick_ratio() <= floor:
                continue
            score = matcher.ratio()
            if score > best[0]:
                best = (score, target)
    return best


# ------------------------------------------------------------------------------------------------ REDCap

REDCAP_COLUMNS = {
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
}
_ARM_SUFFIX = re.compile(r"_arm_\d+$")


def is_redcap_export(headers: list[str]) -> bool:
    return bool(headers) and (
        bool(REDCAP_COLUMNS & set(headers)) or any(h.endswith("_complete") for h in headers)
    )


def redcap_mapping(
    headers: list[str], items: dict[str, list[tuple[str, str | None]]], events: list[str], default_event: str
) -> Mapping:
    """A mapping for a REDCap records export, from its headers and the study's forms.

    `items` maps an item name to [(form, group)] where it occurs. The first column is the record id;
    `field___code` columns are checkbox codes; `<form>_complete` is the form's status; the event
    `enrollment_arm_1` is the study's event `enrollment` (the arm suffix dropped).
    """
    columns = []
    status_columns = {}
    forms = {form for places in items.values() for form, _ in places}
    for header in headers[1:]:
        if header in REDCAP_COLUMNS:
            continue
        if header.endswith("_complete") and header[: -len("_complete")] in forms:
            status_columns[header[: -len("_complete")]] = header
            continue
        name, _, code = header.partition("___")
        if name in items:
            form, _group = items[name][0]
            columns.append(ColumnSpec(column=header, form=form, item=name, code=code))
    event_values = {}
    has_events = "redcap_event_name" in headers
    if has_events:
        for event in events:
            event_values[f"{event}_arm_1"] = event
    return Mapping(
        subject_column=headers[0],
        columns=columns,
        event="" if has_events else default_event,
        event_column="redcap_event_name" if has_events else "",
        event_values=event_values,
        instance_column="redcap_repeat_instance" if "redcap_repeat_instance" in headers else "",
        repeat_form_column="redcap_repeat_instrument" if "redcap_repeat_instrument" in headers else "",
        status_columns=status_columns,
        date_format="YMD",
        # REDCap exports hold codes and its own missing codes only; never reinterpret 'NA' or '-9'.
        missing_values={},
    )


def redcap_event_name(label: str, event_values: dict[str, str]) -> str:
    if label in event_values:
        return event_values[label]
    return _ARM_SUFFIX.sub("", label)
