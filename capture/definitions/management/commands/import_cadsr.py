from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.definitions import services
from capture.definitions.loader import DefinitionError

from ._interop import definition_error, read, report


class Command(BaseCommand):
    help = (
        "Load caDSR CDE XML exports (data elements with their public ids, permissible values and concept "
        "codes) and caDSR Form Builder (FormCart) XML (forms) into the definitions registry. Files with a "
        "DOCTYPE or entities are refused. A changed element loads as a new version; a used one never changes."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--check", action="store_true", help="convert and report only")
        add_actor_argument(parser)

    def handle(self, *args, files, check, **options):
        actor = actor_from_options(options, "import_cadsr")
        for path in files:
            conversion = services.convert("cadsr", read(path), source=path.name)
            report(self, conversion)
            if check:
                continue
            try:
                result, _ = services.import_definitions(actor=actor, conversion=conversion)
            except DefinitionError as exc:
                raise definition_error(exc) from None
            except PermissionDenied as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(f"{path.name}: {result.summary()}."))
