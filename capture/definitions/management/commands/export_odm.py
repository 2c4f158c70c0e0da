from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
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
        add_actor_argument(parser)
        parser.add_argument("--out", type=Path, help="file to write")

    def handle(self, *args, study, out, **options):
        actor = actor_from_options(options, "export_odm")
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study {study!r}. Fix: give the short name shown in the study list.")
        try:
            data, problems = services.export_odm(actor=actor, study=found)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        target = out or Path(f"{study}_odm.xml")
        write_output(target, data)
        if problems:
            raise CommandError(
                "\n".join(str(p) for p in problems) + f"\n{target} does not validate; please report it."
            )
        self.stdout.write(self.style.SUCCESS(f"Wrote {target} (valid ODM 1.3.2)."))
