"""Operations the migrations share.

`drop_indexes` drops single-column indexes by the names Django gave them, instead of the
AlterField (db_index=False) that on SQLite copies the whole table to drop one index: for the
audit and record tables, millions of rows. Pair it with the AlterField as a state operation
(SeparateDatabaseAndState) so the models' state follows.
"""

from __future__ import annotations

from django.db import migrations


def drop_indexes(table: str, names: dict[str, str]) -> migrations.RunPython:
    """Drop `table`'s indexes `names` (column -> index name); reversed, make them again."""

    def drop(apps, schema_editor) -> None:
        for name in names.values():
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')

    def create(apps, schema_editor) -> None:
        for column, name in names.items():
            schema_editor.execute(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')

    return migrations.RunPython(drop, create)
