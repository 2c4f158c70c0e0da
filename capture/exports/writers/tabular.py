"""CSV (one file per table) and XLSX (a sheet per table, then the codebook), streamed.

CSV is UTF-8 with a byte-order mark so spreadsheet programs read accents correctly. The
workbook is written by xlsxwriter in constant-memory mode: rows go to disk as they arrive.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt

import xlsxwriter

from ..codebook import CODEBOOK_FIELDS
from ..columns import Missing
from . import Writer, neutralise


class CsvWriter(Writer):
    extension = "csv"

    def begin(self, table) -> None:
        path = self.path_for(table)
        self._handle = path.open("w", newline="", encoding="utf-8-sig")
        self._csv = csv.writer(self._handle)
        self._csv.writerow([c.name for c in table.columns])
        self._formats: list | None = None
        self.files.append(path)

    def write(self, table, batch) -> None:
        if self._formats is None:
            self._formats = [self.column_formatter(col, neutral=True) for col in table.columns]
        self._csv.writerows(
            zip(*[fmt(values) for fmt, values in zip(self._formats, batch.columns, strict=True)], strict=True)
        )

    def end(self, table) -> None:
        self._handle.close()

    def finish(self, codebook_rows) -> None:
        pass  # the bundle carries codebook.csv already

    def abandon(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()


class XlsxWriter(Writer):
    extension = "xlsx"

    def __init__(self, workdir, builder):
        super().__init__(workdir, builder)
        self.path = workdir / "dataset.xlsx"
        self.book = xlsxwriter.Workbook(
            str(self.path),
            {
                "constant_memory": True,
                # Text stays text: never a formula, a link or a number guessed from a string.
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self.bold = self.book.add_format({"bold": True})
        self.date = self.book.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        self.files.append(self.path)
        self._sheet_names: set[str] = set()

    def _sheet(self, title: str):
        name = title[:31]
        n = 1
        while name.lower() in self._sheet_names:
            n += 1
            name = f"{title[:28]}_{n}"
        self._sheet_names.add(name.lower())
        return self.book.add_worksheet(name)

    def begin(self, table) -> None:
        self.sheet = self._sheet(table.name)
        for n, col in enumerate(table.columns):
            self.sheet.write_string(0, n, col.name, self.bold)
        self.sheet.freeze_panes(1, 1)
        self.row = 1

    def write(self, table, batch) -> None:
        sheet = self.sheet
        for values in batch.rows():
            r = self.row
            for n, (col, value) in enumerate(zip(table.columns, values, strict=True)):
                if value is None:
                    continue
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and not (self.labels and col.labelled)
                ):
                    sheet.write_number(r, n, value)
                elif isinstance(value, dt.datetime):
                    sheet.write_datetime(r, n, value, self.datetime)
                elif isinstance(value, dt.date) and not isinstance(value, Missing):
                    sheet.write_datetime(r, n, value, self.date)
                else:
                    sheet.write_string(r, n, neutralise(self.text(col, value)))
            self.row += 1

    def finish(self, codebook_rows) -> None:
        sheet = self._sheet("codebook")
        for n, name in enumerate(CODEBOOK_FIELDS):
            sheet.write_string(0, n, name, self.bold)
        for r, row in enumerate(codebook_rows, start=1):
            for n, name in enumerate(CODEBOOK_FIELDS):
                value = row[name]
                if value not in ("", None):
                    sheet.write_string(r, n, neutralise(str(value)))
        self.book.close()

    def abandon(self) -> None:
        # Closing removes its temporary files; the format has failed already, its file is left out.
        with contextlib.suppress(Exception):
            self.book.close()
