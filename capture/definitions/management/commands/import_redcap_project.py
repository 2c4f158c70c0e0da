"""manage.py import_redcap_project: a whole REDCap project into a new study (capture/migration/redcap.py)."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.imports.mapping import parse_value_map
from capture.migration.redcap import migrate


class Command(BaseCommand):
    help = (
        "Create a study from the files a REDCap project exports, recognised by their headers: data dictionary, "
        "arms, events, instrument-event mapping, DAGs, repeating instruments, a flat records CSV (raw) or a "
        "project XML with or without its data. Subjects keep REDCap's record ids; every record keeps its "
        "status and repeat instance; --user becomes the study's administrator and is the actor of every "
        "change. All or nothing: any bad cell (each one is listed: row, column, value, why) or --dry-run "
        "writes nothing. --value-map 'sex: TRUE=1; FALSE=0' recodes a field's values before import "
        "(repeat it for several fields)."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--study", required=True, help="short name (slug) of the new study")
        parser.add_argument("--name", default="", help="the study's name (default: the slug)")
        parser.add_argument(
            "--user", required=True, help="the acting user; becomes the study's administrator"
        )
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
        parser.add_argument(
            "--value-map",
            action="append",
            default=[],
            metavar="FIELD: LEGACY=CODE; ...",
            help="recode a field",
        )

    def handle(self, *args, files, study, name, user, dry_run, value_map, **options):
        acting = get_user_model().objects.filter(username=user, is_active=True).first()
        if acting is None:
            raise CommandError(f"No active user {user!r} (--user).")
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise CommandError(f"No such file: {', '.join(missing)}.")
        report = migrate(
            user=acting,
            slug=study,
            name=name,
            files=[(path.name, path.read_bytes()) for path in files],
            dry_run=dry_run,
            value_map=_value_maps(value_map),
        )
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{len(report.errors) + len(report.problems)} problems; nothing was written.")


def _value_maps(options: list[str]) -> dict[str, dict[str, str]]:
    maps: dict[str, dict[str, str]] = {}
    for option in options:
        field, colon, pairs = option.partition(":")
        if not colon or not field.strip():
            raise CommandError(f"--value-map {option!r}: write FIELD: LEGACY=CODE; LEGACY=CODE.")
        try:
            maps[field.strip()] = parse_value_map(pairs)
        except ValidationError as exc:  # names the bad pair
            raise CommandError(f"--value-map {option!r}: {' '.join(exc.messages)}") from None
    return maps
