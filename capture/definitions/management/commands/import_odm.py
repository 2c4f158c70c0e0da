from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.definitions import services
from capture.definitions.converters.redcap import project_key
from capture.definitions.loader import DefinitionError
from capture.studies.models import Study

from ._interop import definition_error, read, report


class Command(BaseCommand):
    help = (
        "Load the metadata of a CDISC ODM 1.3 file or a REDCap project XML (ODM 1.3.1 with redcap: "
        "attributes): forms, elements, code lists and, from study events, a schedule. With --study, create "
        "that study on it (or load new definition versions of an existing one); without, load the "
        "definitions only. Problems name the line; with an error nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--study", help="short name (slug) of the study to create or update")
        parser.add_argument("--name", default="", help="the new study's name")
        parser.add_argument(
            "--project", default="", help="project key for ids (default: from the study or file)"
        )
        parser.add_argument("--check", action="store_true", help="convert and report only")
        add_actor_argument(parser)

    def handle(self, *args, file, study, name, project, check, **options):
        actor = actor_from_options(options, "import_odm")
        existing = Study.objects.filter(slug=study).select_related("schedule").first() if study else None
        key = existing.schedule.name if existing else (project or project_key(study or file.stem))
        conversion = services.convert("odm", read(file), source=file.name, project=key, title=name)
        report(self, conversion)
        if check:
            return
        try:
            if existing:
                result = services.update_study_definitions(actor=actor, study=existing, conversion=conversion)
            elif study:
                _, result = services.create_study_from_conversion(
                    actor=actor, conversion=conversion, slug=study, name=name or conversion.title or study
                )
            else:
                result, _ = services.import_definitions(actor=actor, conversion=conversion)
        except DefinitionError as exc:
            raise definition_error(exc) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{file.name}: {result.summary()}."))
