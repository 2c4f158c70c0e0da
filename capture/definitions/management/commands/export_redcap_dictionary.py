from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.cli import write_output
from capture.definitions import services
from capture.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's definitions as a REDCap data dictionary (DIR/<slug>_dictionary.csv) with the arms, "
        "events and instrument-event mapping CSVs REDCap's API imports. What a dictionary cannot hold "
        "(units, concept codes, repeating groups) is listed as warnings."
    )

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's short name (slug)")
        add_actor_argument(parser)
        parser.add_argument("--out", type=Path, default=Path("."), help="folder to write into")

    def handle(self, *args, study, out, **options):
        actor = actor_from_options(options, "export_redcap_dictionary")
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study {study!r}. Fix: give the short name shown in the study list.")
        try:
            text, schedule, problems = services.export_redcap_dictionary(actor=actor, study=found)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        write_output(out / f"{study}_dictionary.csv", text)
        for kind, content in schedule.items():
            write_output(out / f"{study}_{kind}.csv", content)
        for problem in problems:
            self.stdout.write(f"warning: {problem}")
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {out / f'{study}_dictionary.csv'} and the arms, events, mapping.")
        )
