from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from capture.imaging.sharing import check_tree


class Command(BaseCommand):
    help = (
        "Report every PS3.15 Annex E attribute that still carries a value in the DICOM files under PATH "
        "(UIDs not remapped, identifying text, dates without the Modified Dates declaration, times of action "
        "X), every private attribute, files not declared de-identified, and images whose pixels may carry "
        "burned-in text (BurnedInAnnotation YES; US, SC, OT, XA, ES or secondary capture without "
        "BurnedInAnnotation NO). Exits with status 1 on any finding."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        checked, problems = check_tree(path)
        for name, finding in problems:
            self.stdout.write(f"{name}: {finding}")
        summary = f"{checked} files checked, {len(problems)} findings."
        if problems:
            raise CommandError(summary)
        self.stdout.write(summary)
