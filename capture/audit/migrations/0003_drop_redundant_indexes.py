"""Three audit indexes that no query needs, dropped: each was paid for on every insert (an import
writes an event per record; a migration of 10,000 REDCap records writes 68,000).

- `chain` alone: the unique (chain, seq) and the four audit-page indexes all begin with it.
- `action` alone: every query asks for an action within one chain (the audit page, the REDCap log,
  the REST audit list), which audit_chain_action_time answers.
- (object_type, object_id): `object_id` alone finds an object's events as fast (at most a few
  events of other types share an object's id), and answers the REST audit list's ?object_id=.

The single-column indexes are dropped by name (on PostgreSQL with their `_like` pattern-ops twins),
not by AlterField, which on SQLite would copy the whole audit table twice to drop an index.
"""

from django.db import migrations, models

TABLE = "audit_auditevent"
# The names Django gave the db_index indexes (schema_editor._create_index_name of table and column).
SINGLE = {"chain": "audit_auditevent_chain_1b26d5df", "action": "audit_auditevent_action_2131bb77"}


def drop_single(apps, schema_editor):
    for name in SINGLE.values():
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}_like"')


def create_single(apps, schema_editor):
    for column, name in SINGLE.items():
        schema_editor.execute(f'CREATE INDEX "{name}" ON "{TABLE}" ("{column}")')
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'CREATE INDEX "{name}_like" ON "{TABLE}" ("{column}" varchar_pattern_ops)')


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_audit_page_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="auditevent",
            name="audit_audit_object__0e78a5_idx",
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_single, create_single)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="action",
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="chain",
                    field=models.CharField(max_length=100),
                ),
            ],
        ),
    ]
