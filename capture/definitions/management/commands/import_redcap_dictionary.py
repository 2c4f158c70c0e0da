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
        "Convert a REDCap data dictionary (CSV; REDCap's or the API's column names) into Capture definitions "
        "and create a study on it, or load it as new definition versions of an existing study. A longitudinal "
        "project also needs --events and --mapping (and --arms for arm names). Every problem is listed with "
        "its line and column; with an error nothing is written. A definition that changed loads as a new "
        "version; a used version never changes. --check converts and reports without writing."
    )

    def add_arguments(self, parser):
        parser.add_argument("dictionary", type=Path)
        parser.add_argument(
            "--study", required=True, help="short name (slug) of the study to create or update"
        )
        parser.add_argument("--name", default="", help="the new study's name (default: the slug)")
        parser.add_argument("--project", default="", help="project key for ids (default: from the slug)")
        parser.add_argument("--arms", type=Path, help="REDCap arms CSV (arm_num,name)")
        parser.add_argument(
            "--events", type=Path, help="REDCap events CSV (event_name,arm_num,unique_event_name,...)"
        )
        parser.add_argument(
            "--mapping", type=Path, help="instrument-event mapping CSV (arm_num,unique_event_name,form)"
        )
        parser.add_argument("--repeating", nargs="*", default=[], help="instruments that repeat")
        parser.add_argument("--check", action="store_true", help="convert and report only")
        add_actor_argument(parser)

    def handle(
        self, *args, dictionary, study, name, project, arms, events, mapping, repeating, check, **options
    ):
        actor = actor_from_options(options, "import_redcap_dictionary")
        existing = Study.objects.filter(slug=study).select_related("schedule").first()
        key = existing.schedule.name if existing else (project or project_key(study))
        conversion = services.convert(
            "redcap",
            read(dictionary),
            source=dictionary.name,
            project=key,
            title=name or study,
            arms=read(arms),
            events=read(events),
            mapping=read(mapping),
            repeating=repeating,
        )
        report(self, conversion)
        self.stdout.write(f"{len(conversion.forms)} forms, {len(conversion.elements)} elements.")
        if check:
            return
        try:
            if existing:
                result = services.update_study_definitions(actor=actor, study=existing, conversion=conversion)
                existing.refresh_from_db()
                message = f"Study {existing.slug} now runs on {existing.schedule.ref}: {result.summary()}."
            else:
                made, result = services.create_study_from_conversion(
                    actor=actor, conversion=conversion, slug=study, name=name or study
                )
                message = (
                    f"Created study {made.slug} on {made.schedule.ref}: {result.summary()}. Add sites next."
                )
        except DefinitionError as exc:
            raise definition_error(exc) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(message))
