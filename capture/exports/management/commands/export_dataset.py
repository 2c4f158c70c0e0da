from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from capture.cli import output_folder
from capture.exports import services
from capture.exports.spec import CHECKBOX_MODES, DATE_MODES, FORMATS, LAYOUTS, ExportSpec
from capture.studies import access


def _list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Export a study's dataset as a zip (data files, codebook.csv, manifest.json), as USER would "
        "from the web: USER sees only their sites' subjects, needs the export_deidentified right, and "
        "gets identifiers and real dates only with --identified, the export_identified right and a "
        "--reason. Empty selections mean everything. The export is audited; the manifest's "
        "'reproduce' line repeats it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        # An export is always a person's (their sites, their rights, their reason): no system actor.
        parser.add_argument(
            "--as",
            "--user",
            dest="user",
            required=True,
            metavar="USER",
            help="username the export is made as",
        )
        parser.add_argument("--format", default="csv", help=f"comma-separated: {', '.join(FORMATS)}")
        parser.add_argument("--layout", default="wide", choices=list(LAYOUTS))
        parser.add_argument("--forms", default="", help="comma-separated form names")
        parser.add_argument("--items", default="", help="comma-separated form.item")
        parser.add_argument("--events", default="", help="comma-separated event names")
        parser.add_argument("--sites", default="", help="comma-separated site codes")
        parser.add_argument("--subjects", default="", help="comma-separated subject ids")
        parser.add_argument("--cohort", default="", help='an expression, e.g. "[age] >= 18"')
        parser.add_argument("--checkboxes", default="split", choices=list(CHECKBOX_MODES))
        parser.add_argument("--labels", action="store_true", help="meanings instead of codes in text formats")
        parser.add_argument("--dates", default="shift", choices=list(DATE_MODES))
        parser.add_argument("--rehash-ids", action="store_true")
        parser.add_argument("--drop-free-text", action="store_true")
        parser.add_argument("--no-imaging", action="store_true")
        parser.add_argument("--identified", action="store_true")
        parser.add_argument("--reason", default="")
        parser.add_argument(
            "--include-files", action="store_true", help="File contents in the zip (identified exports only)."
        )
        parser.add_argument(
            "--measurements", action="store_true", help="imaging measurement and response tables"
        )
        parser.add_argument("--output", default=".", help="folder for the zip (default: here)")

    def handle(self, *args, **options):
        output_folder(Path(options["output"]))
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['user']!r}. Check the username.")
        spec = ExportSpec(
            layout=options["layout"],
            formats=_list(options["format"]),
            forms=_list(options["forms"]),
            items=_list(options["items"]),
            events=_list(options["events"]),
            sites=_list(options["sites"]),
            subjects=_list(options["subjects"]),
            cohort=options["cohort"],
            checkboxes=options["checkboxes"],
            labels=options["labels"],
            identified=options["identified"],
            reason=options["reason"],
            date_mode=options["dates"],
            rehash_ids=options["rehash_ids"],
            drop_free_text=options["drop_free_text"],
            imaging=not options["no_imaging"],
            include_files=options["include_files"],
            measurements=options["measurements"],
        )
        try:
            study = access.get_study(user, options["study"], "export_deidentified")
            result = services.export_dataset(
                actor=user,
                study=study,
                spec=spec,
                output_dir=Path(options["output"]),
                progress=lambda done, total, message="": self.stderr.write(f"{done}/{total} {message}"),
            )
        except Http404:
            raise CommandError(f"{user} has no study {options['study']!r} (or may not see it).") from None
        except (PermissionDenied, ValidationError) as exc:
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            raise CommandError(" ".join(messages)) from None
        tables = ", ".join(f"{t['name']}: {t['rows']} rows" for t in result.manifest["tables"])
        self.stdout.write(f"{result.path}\n{tables}")
