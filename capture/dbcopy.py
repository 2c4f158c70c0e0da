"""Fast INSERT of many rows of one model: COPY on PostgreSQL, multi-row INSERTs elsewhere.

For the bulk writers (the audit chain's `append_events`, the record import's `bulk`), where
the ORM's bulk_create costs several times more per row. Values are already adapted for the
database (JSON as text); column names come from the model's metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice

from django.db import connection

ROWS_PER_STATEMENT = 100  # rows of one multi-row INSERT (fewer when they would pass the parameter limit)


def insert_rows(model, names: list[str], rows: Iterable[tuple], batch: int = 2000) -> None:
    """INSERT `rows` (tuples in the order of `names`) into `model`'s table.

    On PostgreSQL one COPY, fed as `rows` yields (so a generator that builds rows while the
    server parses must not query the database itself). Elsewhere (SQLite) INSERTs of many rows
    each, `VALUES (...), (...), ...` up to the backend's limit of parameters a statement, in the
    order given (so SQLite numbers new rows consecutively, as the callers rely on): executemany's
    cost per row (a statement reset and bound again) was about 40 % of inserting an import's audit
    events (benchmarks/migration_bench.py). `rows` is read `batch` rows at a time."""
    fields = [model._meta.get_field(name) for name in names]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    limit = connection.features.max_query_params or 999
    per = max(1, min(ROWS_PER_STATEMENT, limit // len(fields)))
    one = "(" + ", ".join(["?"] * len(fields)) + ")"
    head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608 - names from model metadata, values are parameters
    full = head + ", ".join([one] * per)
    # The driver's own cursor, as COPY's above: Django's would rewrite each long statement's
    # %s marks to ? again (a regular expression over thousands of characters, every statement).
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    try:
        pending = iter(rows)
        while chunk := list(islice(pending, batch)):
            for at in range(0, len(chunk), per):
                part = chunk[at : at + per]
                sql = full if len(part) == per else head + ", ".join([one] * len(part))
                cursor.execute(sql, list(chain.from_iterable(part)))
    finally:
        cursor.close()
