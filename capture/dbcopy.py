"""Fast INSERT of many rows of one model: COPY on PostgreSQL, executemany elsewhere.

For the bulk writers (the audit chain's `append_events`, the record import's `bulk`), where
the ORM's bulk_create costs several times more per row. Values are already adapted for the
database (JSON as text); column names come from the model's metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from django.db import connection


def insert_rows(model, names: list[str], rows: Iterable[tuple], batch: int = 2000) -> None:
    """INSERT `rows` (tuples in the order of `names`) into `model`'s table.

    On PostgreSQL one COPY, fed as `rows` yields (so a generator that builds rows while the
    server parses must not query the database itself); elsewhere executemany, `batch` rows a
    statement."""
    fields = [model._meta.get_field(name) for name in names]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - names from model metadata, values are parameters
        pending = iter(rows)
        while chunk := list(islice(pending, batch)):
            cursor.executemany(sql, chunk)
