"""Two indexes Django gives FormRecord's foreign keys, dropped, each paid for on every record inserted:

- `subject`: the unique (subject, event, form_name, instance) begins with the same column and
  answers every query by subject, on SQLite and PostgreSQL alike;
- `updated_by`: no query asks by it; only deleting a user would (SET_NULL), which no page offers.

Dropped by name, not by AlterField, which on SQLite would copy the whole table.
"""

from django.conf import settings
from django.db import migrations, models

from capture.migrationops import drop_indexes

# The names schema_editor._create_index_name gave them.
NAMES = {
    "subject_id": "records_formrecord_subject_id_d51b6967",
    "updated_by_id": "records_formrecord_updated_by_id_34779adc",
}


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0003_verification"),
        ("studies", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[drop_indexes("records_formrecord", NAMES)],
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
                migrations.AlterField(
                    model_name="formrecord",
                    name="updated_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
