from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.cli import input_file
from capture.imports import measurement_sheet
from capture.imports.mapping import DATE_FORMATS
from capture.imports.measurement_mapping import SheetMapping, suggest
from capture.imports.report import ImportRefusedError, describe
from capture.studies.models import Study


class Command(BaseCommand):
    help = (
        "Import a measurement sheet (.xlsx/.xls/.ods/.csv: a row per measurement with subject, date or event, "
        "lesion id, measurement, value and UCUM unit; optionally finding site, lymph node, reader). Rules: every "
        "row is checked first; with any problem nothing is stored and every problem is listed (row, column, "
        "value, reason). One report is stored per subject and date, through the same write path as DICOM SR; "
        "importing the same file again changes nothing. The columns are suggested from the headers unless "
        "--mapping-file (JSON) names them. Runs as --user, with that user's permissions (import_data) and sites."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        parser.add_argument("--user", required=True, help="username the import runs as (and is audited as)")
        parser.add_argument("--mapping-file", type=Path, help="the columns as JSON (keys: subject_column, …)")
        parser.add_argument("--date-format", choices=list(DATE_FORMATS), default=None)
        parser.add_argument("--sheet", default="")
        parser.add_argument("--dry-run", action="store_true", help="check and report; store nothing")

    def handle(self, *args, **opts):
        input_file(opts["file"], "measurement sheet")
        input_file(opts["mapping_file"], "mapping (JSON)")
        study = Study.objects.filter(slug=opts["study"]).first()
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if study is None or user is None:
            raise CommandError(f"No study {opts['study']!r} or no user {opts['user']!r}.")
        try:
            mapping = self._mapping(opts)
            report = measurement_sheet.run_import(
                actor=user, study=study, path=opts["file"], mapping=mapping, commit=not opts["dry_run"]
            )
        except ImportRefusedError as exc:
            self._print(exc.report)
            raise CommandError(exc.messages[0]) from None
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        self._print(report)

    def _mapping(self, opts) -> SheetMapping:
        reader = {"sheet": opts["sheet"]}
        if opts["mapping_file"]:
            spec = {**json.loads(opts["mapping_file"].read_text()), **reader}
        else:
            table = measurement_sheet.read(opts["file"], SheetMapping(**reader))
            spec = {**suggest(table.headers), **reader}
            self.stderr.write(
                f"Columns suggested from the headers: {json.dumps({k: v for k, v in spec.items() if k.endswith('_column') and v})}"
            )
        if opts["date_format"]:
            spec["date_format"] = opts["date_format"]
        return SheetMapping.from_spec(spec)

    def _print(self, report: dict) -> None:
        for p in report["problems"]:
            self.stdout.write(f"{p['severity']}: {describe(p)}")
        c = report["counts"]
        verb = "stored" if report.get("committed") else "would store"
        self.stdout.write(
            f"{c['rows']} row(s): {verb} {c['new']} reading(s), {c['unchanged']} already stored; "
            f"{c['problems']} problem(s), {c['warnings']} warning(s)."
        )
