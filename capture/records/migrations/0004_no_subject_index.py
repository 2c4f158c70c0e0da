"""The index Django gives FormRecord's `subject` foreign key, dropped: the unique (subject, event,
form_name, instance) begins with the same column and answers every query by subject, on SQLite and
PostgreSQL alike, so the second index was only paid for, on every record inserted.

Dropped by name, not by AlterField, which on SQLite would copy the whole table.
"""

from django.db import migrations, models

NAME = "records_formrecord_subject_id_d51b6967"  # schema_editor._create_index_name's


def drop(apps, schema_editor):
    schema_editor.execute(f'DROP INDEX IF EXISTS "{NAME}"')


def create(apps, schema_editor):
    schema_editor.execute(f'CREATE INDEX "{NAME}" ON "records_formrecord" ("subject_id")')


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0003_verification"),
        ("studies", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop, create)],
            state_operations=[
                migrations.AlterField(
                    model_name="formrecord",
                    name="subject",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.PROTECT,
                        related_name="records",
                        to="studies.subject",
                    ),
                ),
            ],
        ),
    ]
