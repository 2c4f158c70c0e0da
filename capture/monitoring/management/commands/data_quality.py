from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.monitoring import checks
from capture.studies.models import Study


class Command(BaseCommand):
    help = (
        "Run every data quality rule (built-in checks, the definitions' rules and the web's) over "
        "a study, or every study, and store what is found. Meant for a nightly cron line; the "
        "web's 'Run the checks now' starts the same work as a background job."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", help="the study's slug (default: every study)")
        add_actor_argument(parser)

    def handle(self, *args, **options):
        actor = actor_from_options(options, "data_quality")
        studies = Study.objects.all()
        if options["study"]:
            studies = studies.filter(slug=options["study"])
            if not studies.exists():
                raise CommandError(f"No study {options['study']!r}; `manage.py shell` lists them.")
        for study in studies:
            run = checks.run_checks(actor=actor, study=study)
            self.stdout.write(f"{study.slug}: {run.records} records checked, {run.found} findings")
