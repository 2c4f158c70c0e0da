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
from . import Writer

ROW_GROUP = 10_000  # rows buffered as Python objects before a row group is written: bounds memory

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
        self._buffer: list[list] = []
        self.files.append(path)

    def write(self, table, rows) -> None:
        self._buffer.extend(rows)
        if len(self._buffer) >= ROW_GROUP:
            self._flush(table)

    def _flush(self, table) -> None:
        if not self._buffer:
            return
        arrays = []
        for n, (col, field) in enumerate(zip(table.columns, self._schema, strict=True)):
            values = [row[n] for row in self._buffer]
            arrays.append(pa.array(self._cells(col, field.type, values), type=field.type))
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._buffer = []

    def _cells(self, col: Column, kind, values: list) -> list:
        if kind == pa.string():
            fmt = self.formatter(col, neutral=False)
            return [None if v is None else fmt(v) for v in values]
        if kind == pa.bool_():
            return [None if v is None or isinstance(v, Missing) else bool(v) for v in values]
        return [None if isinstance(v, Missing) else v for v in values]

    def end(self, table) -> None:
        self._flush(table)
        self._writer.close()
