"""Parquet: typed columns, one file per table, written in row groups as batches arrive.

Types: integer/days → int64, decimal → float64, date → date32, datetime → timestamp[s],
boolean and checkbox options → bool, record status → int8, everything else → string (coded
values as codes, or meanings when labels are asked for). A missing-data code in a typed
(numeric or date) column becomes null: Parquet has no user-missing values; in string columns
the code itself is kept. Each field's metadata carries its label and data element.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from ..columns import Column, Missing
from . import TEXT_CELLS, Writer

ROW_GROUP = 10_000  # rows buffered (as Arrow columns) before a row group is written: bounds memory

_TYPES = {
    "integer": pa.int64(),
    "days": pa.int64(),
    "decimal": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("s"),
    "boolean": pa.bool_(),
    "option": pa.bool_(),
    "status": pa.int8(),
}


def _no_codes(values):
    """The cells with missing-data codes as None (checked at C speed; rewritten only if any)."""
    if Missing in set(map(type, values)):
        return [None if v.__class__ is Missing else v for v in values]
    return values


def arrow_type(col: Column):
    if col.source == "context" and col.key in ("event_day", "instance", "row"):
        return pa.int64()
    return _TYPES.get(col.datatype, pa.string())


class ParquetWriter(Writer):
    extension = "parquet"

    def schema(self, table) -> pa.Schema:
        fields = []
        for col in table.columns:
            meta = {"label": col.label, "datatype": col.datatype}
            if col.item:
                meta["element"] = col.item.element.ref
                meta["form"] = col.item.form
            if col.event:
                meta["event"] = col.event
            if col.codes:
                meta["codes"] = json.dumps([[c, m] for c, m, _ in col.codes])
            kind = arrow_type(col)
            if self.labels and col.labelled and kind != pa.string():
                kind = pa.string()
            fields.append(pa.field(col.name, kind, metadata=meta))
        return pa.schema(fields)

    def begin(self, table) -> None:
        self._schema = self.schema(table)
        path = self.path_for(table)
        self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")
        self._arrays = [
            self._array(col, field.type) for col, field in zip(table.columns, self._schema, strict=True)
        ]
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self.files.append(path)

    def write(self, table, batch) -> None:
        # Each chunk becomes typed Arrow columns at once (compact, unlike Python rows); they are
        # written as one row group when ROW_GROUP rows have gathered.
        arrays = [array(values) for array, values in zip(self._arrays, batch.columns, strict=True)]
        self._buffer.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._buffered += len(batch)
        if self._buffered >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        self._writer.write_table(
            pa.Table.from_batches(self._buffer, schema=self._schema), row_group_size=ROW_GROUP
        )
        self._buffer = []
        self._buffered = 0

    def _array(self, col: Column, kind):
        """A function (a column's cells) -> the Arrow array of the column's type."""
        if kind == pa.string():
            fmt = self.formatter(col, neutral=False)
            if self.labels and (col.labelled or col.datatype == "multi"):
                return lambda values: pa.array([None if v is None else fmt(v) for v in values], type=kind)
            return lambda values: pa.array(
                values
                if TEXT_CELLS.issuperset(map(type, values))
                else [v if v.__class__ is str or v is None else fmt(v) for v in values],
                type=kind,
            )
        # Typed columns: pyarrow converts the values; a missing-data code becomes null.
        if kind == pa.bool_():  # 1/0 cells
            return lambda values: pa.array(_no_codes(values), type=pa.int64()).cast(kind)
        return lambda values: pa.array(_no_codes(values), type=kind)

    def end(self, table) -> None:
        self._flush()
        self._writer.close()

    def abandon(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()
