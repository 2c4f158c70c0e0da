"""Variable names for the statistical formats, which limit them; every other format keeps full names.

CSV, XLSX and Parquet write each column under its full name (`Column.name`, e.g.
`treatment_start_date_on_treatment_i2`). Stata, SPSS and SAS transport refuse long names, so their
writers take the names `short_names(columns, fmt)` gives. The limits, measured against the
installed pyreadstat (tests/exports/test_names.py writes a name at each limit and one byte over):

| format | name limit | also refused |
|---|---|---|
| Stata `.dta` (118) | 32 bytes | a value-label set's name over 32 bytes: pyreadstat names the set of the n-th labelled variable `<name><n>` (n from 0), so a labelled variable has 32 minus the digits of n; reserved words (`if`, `in`, `int`, `long`, `float`, `double`, `byte`, `using`, `with`, `str1`…`str2045`, `strL`) |
| SPSS `.sav` | 64 bytes | (SPSS syntax cannot name `all`, `and`, `by`, `eq`, `ge`, `gt`, `le`, `lt`, `ne`, `not`, `or`, `to`, `with`; pyreadstat writes them, SPSS users could not use them) |
| SAS transport `.xpt` version 8 | 32 bytes | (version 5 would allow 8; `.sas7bdat` also 32, not written) |

A name that fits is kept. One that does not is cut and ended with `_` and the first five hex digits
of the SHA-1 of its full name (more digits in the rare case two cuts meet); a reserved word gets
`v_` in front. The names depend only on the table's columns (never on the data), so the same
selection gives the same names in every export, and the codebook's `stata_name`, `spss_name` and
`sas_name` columns (codebook.py) and each shortened variable's label (`<full name>: <label>`) show
the map.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .columns import Column

STAT_FORMATS = ("dta", "sav", "xpt")
NAME_LIMIT = {"dta": 32, "sav": 64, "xpt": 32}  # bytes; names are ASCII (columns.safe_name)
CODEBOOK_FIELD = {"dta": "stata_name", "sav": "spss_name", "xpt": "sas_name"}

STATA_RESERVED = frozenset(
    {"byte", "double", "float", "if", "in", "int", "long", "using", "with", "strl"}
    | {f"str{n}" for n in range(1, 2046)}
)
SPSS_RESERVED = frozenset({"all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to", "with"})
RESERVED = {"dta": STATA_RESERVED, "sav": SPSS_RESERVED, "xpt": frozenset()}

# Numbers in the statistical formats (stats.py writes them as doubles, coded values numbered).
NUMERIC = frozenset({"code", "boolean", "option", "status", "integer", "decimal", "days"})


def stat_numeric(col: Column) -> bool:
    """Whether a statistical format holds the column as a number."""
    if col.source == "context":
        return col.key in ("event_day", "instance", "row")
    return col.datatype in NUMERIC


def may_carry_value_labels(col: Column) -> bool:
    """Whether the Stata writer may give the column value labels (codes, or missing-data codes in
    any numeric item column): such a column's name must leave room for its label set's number."""
    if col.source == "context":
        return False
    return col.labelled or (col.source == "record" and stat_numeric(col))


def short_names(columns: Sequence[Column], fmt: str) -> list[str]:
    """The names `fmt` (dta, sav or xpt) writes for `columns`, in order: unique, within its
    limits, the full name wherever it fits."""
    limit, reserved = NAME_LIMIT[fmt], RESERVED[fmt]
    rooms = []
    labelled = 0
    for col in columns:
        room = limit
        if fmt == "dta" and may_carry_value_labels(col):
            room -= len(str(labelled))  # pyreadstat's set name: <name><n>
            labelled += 1
        rooms.append(room)
    names: list[str | None] = [
        col.name if len(col.name) <= room and col.name not in reserved else None
        for col, room in zip(columns, rooms, strict=True)
    ]
    taken = {name for name in names if name is not None}
    for n, (col, room) in enumerate(zip(columns, rooms, strict=True)):
        if names[n] is None:
            names[n] = _shortened(col.name, room, taken, reserved)
            taken.add(names[n])  # type: ignore[arg-type]  # just set
    return names  # type: ignore[return-value]  # every slot filled above


def _shortened(name: str, room: int, taken: set[str], reserved: frozenset) -> str:
    if name in reserved and len(name) + 2 <= room and f"v_{name}" not in taken:
        return f"v_{name}"
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    for width in range(5, min(len(digest), room - 2) + 1):
        candidate = f"{name[: room - width - 1].rstrip('_')}_{digest[:width]}"
        if candidate not in taken and candidate not in reserved:
            return candidate
    raise ValueError(f"No unique short name for {name!r} within {room} characters.")  # 2**-160


def renamed_label(full: str, short: str, label: str) -> str:
    """A variable label that names the full column when the format shortened it."""
    return label if full == short else f"{full}: {label}"
