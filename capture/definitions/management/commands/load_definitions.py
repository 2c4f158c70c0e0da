from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.definitions.loader import DefinitionError, load_definitions


class Command(BaseCommand):
    help = (
        "Load data elements, forms and schedules from YAML files (default: crf_definitions/). "
        "Every file is validated first and nothing is written unless all are valid. Loading the "
        "same files again changes nothing. A version that records already use is never changed: "
        "load changed content under a new version. The format is in docs/definitions.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", type=Path, help="files or folders of definitions")
        add_actor_argument(parser)

    def handle(self, *args, paths, **options):
        try:
            result = load_definitions(
                paths or [settings.CAPTURE["DEFINITIONS_DIR"]],
                actor=actor_from_options(options, "load_definitions"),
            )
        except DefinitionError as exc:
            problems = "\n".join(exc.problems)
            raise CommandError(f"{problems}\n{len(exc.problems)} problem(s); nothing was loaded.") from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Definitions: {result.summary()}."))
