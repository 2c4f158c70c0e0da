"""Writers: one per file format. They receive tables batch by batch and write files.

A writer never decides what goes into an export (the builder does); it only decides how a
cell looks in its format. The protocol, called by `capture.exports.services`:

    writer = WRITERS[fmt](workdir, builder)
    for table: writer.begin(table); writer.write(table, batch) ...; writer.end(table)
    writer.finish(codebook_rows)   # then writer.files lists what it wrote

A batch (`capture.exports.columns.Batch`) holds a chunk of rows as columns. CSV and XLSX
text cells that begin with = + - @ (or a tab / carriage return) are prefixed with an apostrophe
so a spreadsheet never runs them as formulas: the one rule of `capture.cells.neutralise`, for
data cells, missing-code meanings, labels and the codebook alike. Numbers stay numbers.
"""

from __future__ import annotations

import datetime as dt
import operator
from pathlib import Path

from capture.cells import FORMULA_STARTS, neutralise

from ..columns import Column, Missing

__all__ = ["FORMULA_STARTS", "WRITERS", "Writer", "neutralise", "writer_class"]

_FORMULA_FIRST = frozenset(FORMULA_STARTS)
# Cells csv.writer writes as `formatter` would (str of int, repr of float, date.isoformat, None
# as ""), so a column of them needs no formatting. Exact classes: datetime and bool are not here.
_AS_IS = frozenset({int, float, dt.date, type(None)})
TEXT_CELLS = frozenset({str, type(None)})  # a column of text and blanks


class Writer:
    extension = ""

    def __init__(self, workdir: Path, builder):
        self.workdir = workdir
        self.builder = builder
        self.labels = builder.spec.labels
        self.missing_meanings = {c["code"]: c["meaning"] for c in builder.study.missing_codes}
        self.files: list[Path] = []

    def path_for(self, table) -> Path:
        return self.workdir / f"{table.name}.{self.extension}"

    def begin(self, table) -> None:
        pass

    def write(self, table, batch) -> None:
        pass

    def end(self, table) -> None:
        pass

    def finish(self, codebook_rows: list[dict]) -> None:
        pass

    def abandon(self) -> None:
        """The format failed: close what is open (its files are left out of the export)."""

    def formatter(self, col: Column, *, neutral: bool):
        """A fast per-column version of `text` for the text formats ('' for blank);
        `neutral`: strings are neutralised against formula injection."""
        labels = {code: meaning for code, meaning, _ in col.codes} if self.labels and col.labelled else None
        text = self.text
        safe = neutralise if neutral else str

        def fmt(value):
            kind = value.__class__
            if value is None:
                return ""
            if labels is not None:
                return safe(labels.get(str(value), str(value)) if kind is not Missing else text(col, value))
            if kind is str:
                return safe(value)
            if kind is int:
                return str(value)
            if kind is float:
                return repr(value)
            if kind is dt.date:
                return value.isoformat()
            out = text(col, value)
            return safe(out) if kind is Missing else out

        if col.datatype == "multi" and self.labels:
            return lambda value: "" if value is None else safe(text(col, value))
        return fmt

    def column_formatter(self, col: Column, *, neutral: bool):
        """A function (a column's cells) -> what `formatter` makes of each, for csv.writer: cells
        it writes the same way pass as they are, and text that is safe passes unchanged."""
        fmt = self.formatter(col, neutral=neutral)
        if self.labels and (col.labelled or col.datatype == "multi"):
            return lambda values: [fmt(v) for v in values]
        as_is, first = _AS_IS, _FORMULA_FIRST if neutral else frozenset()
        formula = operator.methodcaller("startswith", FORMULA_STARTS if neutral else ())

        def column(values):
            kinds = set(map(type, values))
            if as_is.issuperset(kinds):  # numbers, dates, blanks: nothing to do
                return values
            if TEXT_CELLS.issuperset(kinds) and not any(map(formula, filter(None, values))):
                return values  # text, none of it formula-like (checked at C speed)
            return [
                v if (kind := v.__class__) in as_is or (kind is str and v[:1] not in first) else fmt(v)
                for v in values
            ]

        return column

    # Shared by the text formats (CSV, XLSX, Parquet strings).
    def text(self, col: Column, value) -> str | None:
        if value is None:
            return None
        if isinstance(value, Missing):
            return self.missing_meanings.get(value.code, value.code) if self.labels else value.code
        if col.datatype == "multi" and self.labels:
            return "|".join(col.meaning(code) for code in value.split("|"))
        if col.labelled and self.labels:
            return col.meaning(str(value))
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, float):
            return repr(value)
        return str(value)


# Imported when first used: pandas and pyreadstat cost a second to import, which a CSV
# export should not pay.
WRITERS = {
    "csv": "capture.exports.writers.tabular.CsvWriter",
    "xlsx": "capture.exports.writers.tabular.XlsxWriter",
    "parquet": "capture.exports.writers.parquet.ParquetWriter",
    "dta": "capture.exports.writers.stats.DtaWriter",
    "sav": "capture.exports.writers.stats.SavWriter",
    "xpt": "capture.exports.writers.stats.XptWriter",
    "odm": "capture.exports.writers.odm.OdmWriter",
}


def writer_class(fmt: str) -> type[Writer]:
    from django.utils.module_loading import import_string

    return import_string(WRITERS[fmt])
