from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from capture.cli import write_output
from capture.definitions import services
from capture.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's definitions as CDISC ODM 1.3.2 metadata (StudyEventDef, FormDef, ItemGroupDef, "
        "ItemDef, CodeList; concept codes as Alias nci:ExtCodeID), checked against the ODM 1.3.2 schema. "
        "Default output: <slug>_odm.xml."
    )

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's short name (slug)")
        parser.add_argument("--out", type=Path, help="file to write")

    def handle(self, *args, study, out, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study {study!r}. Fix: give the short name shown in the study list.")
        data, problems = services.export_odm(actor=None, study=found)
        target = out or Path(f"{study}_odm.xml")
        write_output(target, data)
        if problems:
            raise CommandError(
                "\n".join(str(p) for p in problems) + f"\n{target} does not validate; please report it."
            )
        self.stdout.write(self.style.SUCCESS(f"Wrote {target} (valid ODM 1.3.2)."))
