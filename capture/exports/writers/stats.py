"""Stata (.dta), SPSS (.sav) and SAS transport (.xpt, version 8) through pyreadstat.

pyreadstat writes a whole data frame at once, so these formats hold one table's columns in
memory (as compact per-column lists) while the rows arrive; CSV and Parquet stream.

Encoding, the same in every statistical format (the codebook's `stat_values` lists it):
- coded values become numbers with value labels (`codebook.stat_codes`); yes/no and checkbox
  options are 1/0; record status 0/1/2;
- dates are dates, date-times are date-times;
- a study missing-data code in a numeric column is a *user-missing* value, labelled with the
  code's meaning: Stata's extended missing values .a, .b, … (first code .a); SPSS values
  -9991, -9992, … declared missing by the range -9999…-9991. SAS transport has no value
  labels or user-missing values, so there the code becomes a plain missing value. In a date
  column a code becomes missing in every format (the codebook says so). In text columns the
  code stays as text (in SPSS declared missing for the first three codes: the format's limit).

Names: each format writes the names `naming.short_names` gives (the full name where it fits the
format's limit, else a shortened one whose variable label starts with the full name).
"""

from __future__ import annotations

import datetime as dt
import string

import pandas as pd
import pyreadstat

from ..codebook import stat_codes
from ..columns import Column, Missing
from ..naming import renamed_label, short_names, stat_numeric
from . import Writer

SAV_MISSING_TOP = -9991
SAV_MISSING_BOTTOM = -9999


class StatsWriter(Writer):
    def __init__(self, workdir, builder):
        super().__init__(workdir, builder)
        self.codes = [c["code"] for c in builder.study.missing_codes]

    def missing_value(self, index: int):
        raise NotImplementedError

    def begin(self, table) -> None:
        self._data: list[list] = [[] for _ in table.columns]
        self._maps = [
            stat_codes(col) if col.datatype == "code" and col.source != "context" else None
            for col in table.columns
        ]
        self._numeric = [stat_numeric(col) for col in table.columns]
        self._used_missing: list[set] = [set() for _ in table.columns]
        # The format's own names (naming.py): the full name where it fits, else a shortened one.
        self.names = short_names(table.columns, self.extension)

    def write(self, table, batch) -> None:
        cell = self._cell
        for n, (col, values) in enumerate(zip(table.columns, batch.columns, strict=True)):
            self._data[n].extend([cell(n, col, value) for value in values])

    def _cell(self, n: int, col: Column, value):
        if value is None:
            return None
        if isinstance(value, Missing):
            if self._numeric[n] and value.code in self.codes:
                self._used_missing[n].add(value.code)
                return self.missing_value(self.codes.index(value.code))
            if col.datatype in ("date", "datetime"):
                return None
            return value.code
        mapping = self._maps[n]
        if mapping is not None:
            return mapping.get(value)
        if self._numeric[n]:
            return float(value)
        if isinstance(value, (dt.date, dt.datetime)):
            return value
        return str(value)

    def frame(self, table) -> pd.DataFrame:
        data = {}
        for n, col in enumerate(table.columns):
            values, name = self._data[n], self.names[n]
            if self._numeric[n] and not self._used_missing[n]:
                data[name] = pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
            elif self._numeric[n] or col.datatype in ("date", "datetime"):
                data[name] = pd.Series(values, dtype=object)
            else:
                data[name] = pd.Series(["" if v is None else v for v in values], dtype=object)
        return pd.DataFrame(data, columns=self.names)

    def value_labels(self, table) -> dict:
        labels = {}
        for n, col in enumerate(table.columns):
            if col.datatype in ("boolean", "option", "status") or self._maps[n] is not None:
                mapping = self._maps[n] or {code: int(code) for code, _, _ in col.codes}
                labels[self.names[n]] = {mapping[code]: meaning[:120] for code, meaning, _ in col.codes}
        return labels

    def labels_for(self, table, limit: int) -> dict:
        """Variable labels; a shortened variable's starts with its full name (the CSV's column)."""
        return {
            name: renamed_label(col.name, name, col.label)[:limit]
            for col, name in zip(table.columns, self.names, strict=True)
        }


class DtaWriter(StatsWriter):
    extension = "dta"

    def missing_value(self, index: int):
        # Stata has 26 extended missing values; a study with more codes loses the rest to plain missing.
        return string.ascii_lowercase[index] if index < 26 else None

    def end(self, table) -> None:
        frame = self.frame(table)
        labels = self.value_labels(table)
        missing = {}
        letters = [self.missing_value(i) for i in range(len(self.codes))]
        for n, col in enumerate(table.columns):
            if not (self._numeric[n] and col.source == "record" and self._used_missing[n]):
                continue
            name = self.names[n]
            missing[name] = [letter for letter in letters if letter]
            labels.setdefault(name, {})
            for letter, code in zip(letters, self.codes, strict=True):
                if letter:
                    labels[name][letter] = self.missing_meanings[code]
        # Stata keeps text columns as strings; value labels on strings are not allowed.
        path = self.path_for(table)
        pyreadstat.write_dta(
            frame,
            str(path),
            file_label=f"{self.builder.study.name}: {table.title}"[:80],
            column_labels=self.labels_for(table, 80),
            variable_value_labels=labels,
            missing_user_values=missing,
            version=15,
        )
        self.files.append(path)
        self._data = []


class SavWriter(StatsWriter):
    extension = "sav"

    def missing_value(self, index: int):
        value = SAV_MISSING_TOP - index
        return float(value) if value >= SAV_MISSING_BOTTOM else None

    def end(self, table) -> None:
        frame = self.frame(table)
        for n, name in enumerate(self.names):
            if self._numeric[n] and self._used_missing[n]:
                frame[name] = pd.to_numeric(frame[name]).astype("float64")
        labels = self.value_labels(table)
        ranges: dict = {}
        for n, col in enumerate(table.columns):
            if col.source != "record":
                continue
            name = self.names[n]
            if self._numeric[n]:
                ranges[name] = [{"lo": float(SAV_MISSING_BOTTOM), "hi": float(SAV_MISSING_TOP)}]
                labels.setdefault(name, {})
                for i, code in enumerate(self.codes):
                    if self.missing_value(i) is not None:
                        labels[name][self.missing_value(i)] = self.missing_meanings[code]
            elif col.datatype in ("text", "multi", "time"):
                # SPSS allows three discrete missing strings of at most 8 bytes.
                short = [c for c in self.codes if len(c.encode()) <= 8][:3]
                if short:
                    ranges[name] = short
                labels[name] = {c: self.missing_meanings[c] for c in self.codes}
        path = self.path_for(table)
        pyreadstat.write_sav(
            frame,
            str(path),
            file_label=f"{self.builder.study.name}: {table.title}"[:64],
            column_labels=self.labels_for(table, 256),
            variable_value_labels=labels,
            missing_ranges=ranges,
            compress=True,
        )
        self.files.append(path)
        self._data = []


class XptWriter(StatsWriter):
    extension = "xpt"

    def missing_value(self, index: int):
        return None  # SAS transport: no user-missing values; see the module docstring

    def end(self, table) -> None:
        frame = self.frame(table)
        for n, name in enumerate(self.names):
            if self._numeric[n]:
                frame[name] = pd.to_numeric(frame[name]).astype("float64")
        path = self.path_for(table)
        pyreadstat.write_xport(
            frame,
            str(path),
            file_label=f"{self.builder.study.name}"[:40],
            column_labels=self.labels_for(table, 256),  # version 8 keeps long labels
            table_name=table.name[:32],
            file_format_version=8,
        )
        self.files.append(path)
        self._data = []
