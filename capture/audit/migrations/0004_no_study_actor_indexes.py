"""The indexes Django gives the `study` and `actor` foreign keys, dropped: no query asks by them
(the audit page, the chain check, the REDCap log and the REST audit list all ask by `chain`, a
study's being "study:<pk>", and filter users by `actor_label`), yet each was paid for on every
insert. Only deleting a study or a user reads these columns (PROTECT: refused once there are events).

Dropped by name, as 0003 does, not by AlterField, which on SQLite would copy the whole table.
"""

from django.conf import settings
from django.db import migrations, models

from capture.migrationops import drop_indexes

# The names Django gave the foreign keys' indexes (schema_editor._create_index_name).
NAMES = {"study_id": "audit_auditevent_study_id_066197f8", "actor_id": "audit_auditevent_actor_id_270bb4b7"}


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_drop_redundant_indexes"),
        ("studies", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[drop_indexes("audit_auditevent", NAMES)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="study",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.PROTECT,
                        related_name="+",
                        to="studies.study",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="actor",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
