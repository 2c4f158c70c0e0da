from __future__ import annotations

import json
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.cli import input_file, output_folder
from capture.imports import services
from capture.imports.mapping import DATE_FORMATS, Mapping
from capture.imports.models import ImportMapping
from capture.studies.models import Study


class Command(BaseCommand):
    help = (
        "Import a spreadsheet (.xlsx/.xls/.ods/.csv, or a REDCap records export) into a study's form records. "
        "Rules: every row is validated first with the same rules as data entry; with any problem nothing is "
        "written and every problem is listed (sheet, row, column, value, reason). --dry-run only reports. "
        "The mapping comes from --mapping (a saved mapping's name), --mapping-file (JSON) or --redcap; "
        "without one, a suggestion from the headers is printed and nothing is imported. The import runs as "
        "--user, with that user's permissions (import_data) and sites."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        parser.add_argument("--user", required=True, help="username the import runs as (and is audited as)")
        parser.add_argument("--mapping", default="", help="name of a mapping saved with the study")
        parser.add_argument("--mapping-file", type=Path, help="a mapping as JSON")
        parser.add_argument("--redcap", action="store_true", help="the file is a REDCap records export")
        parser.add_argument("--save-mapping", default="", help="save the mapping used under this name")
        parser.add_argument("--sheet", default=None)
        parser.add_argument("--header-row", type=int, default=None)
        parser.add_argument("--header-rows", type=int, default=None)
        parser.add_argument("--delimiter", default=None)
        parser.add_argument("--encoding", default=None)
        parser.add_argument("--date-format", choices=list(DATE_FORMATS), default=None)
        parser.add_argument("--overwrite", action="store_true", help="blank cells clear stored values")
        parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
        parser.add_argument(
            "--enrol",
            action="store_true",
            help="enrol the subjects whose id is not yet in the study (in the same all-or-nothing import): "
            "the id becomes the subject id when the study keeps its source's ids, else it is kept as an "
            "identifier (hashed) so the next import finds the same subject",
        )
        parser.add_argument("--site-column", default=None, help="with --enrol: the column naming each site")
        parser.add_argument("--site", default=None, help="with --enrol: the code of the default site")
        parser.add_argument(
            "--enrolment-date-column", default=None, help="with --enrol: the enrolment dates (else today)"
        )
        parser.add_argument(
            "--key-kind", default=None, help="with --enrol: the identifier kind of the ids (mrn, patient_id)"
        )
        parser.add_argument("--report", type=Path, help="write the annotated workbook (.xlsx) here")

    def handle(self, *args, **opts):
        input_file(opts["file"], "spreadsheet")
        input_file(opts["mapping_file"], "mapping (JSON)")
        if opts["report"]:
            output_folder(opts["report"].parent)
        study = Study.objects.filter(slug=opts["study"]).first()
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if study is None or user is None:
            raise CommandError(f"No study {opts['study']!r} or no user {opts['user']!r}.")
        try:
            mapping = self._mapping(study, opts)
            if mapping is None:
                return
            report = self._run(study, user, mapping, opts)
        except services.ImportRefusedError as exc:
            self._print(exc.report, opts)
            raise CommandError(exc.messages[0]) from None
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        self._print(report, opts)

    def _mapping(self, study, opts) -> Mapping | None:
        spec: dict | None
        if opts["mapping"]:
            saved = ImportMapping.objects.filter(study=study, name=opts["mapping"]).first()
            if saved is None:
                names = ", ".join(ImportMapping.objects.filter(study=study).values_list("name", flat=True))
                raise CommandError(f"No saved mapping {opts['mapping']!r}; saved: {names or 'none'}.")
            spec = dict(saved.spec)
        elif opts["mapping_file"]:
            spec = json.loads(opts["mapping_file"].read_text())
        else:
            table = services.read(
                opts["file"], Mapping.from_spec({"subject_column": "-", "event": "-", **self._reader(opts)})
            )
            spec = (
                services.redcap_spec(services.StudyForms.of(study), table.headers) if opts["redcap"] else None
            )
            if spec is None:
                spec = services.suggest_mapping(study, table)
                self.stdout.write(json.dumps(spec, indent=2))
                self.stderr.write(
                    "No mapping given: above is a suggestion. Check it, save it, and pass --mapping-file."
                )
                return None
        spec.update(self._reader(opts))
        if opts["date_format"]:
            spec["date_format"] = opts["date_format"]
        if opts["overwrite"]:
            spec["overwrite"] = True
        if opts["enrol"]:
            spec["enrol"] = True
        for key in ("site_column", "site", "enrolment_date_column", "key_kind"):
            if opts[key] is not None:
                spec[key] = opts[key]
        mapping = Mapping.from_spec(spec)
        return mapping

    @staticmethod
    def _reader(opts) -> dict:
        keys = {
            "sheet": "sheet",
            "header_row": "header_row",
            "header_rows": "header_rows",
            "delimiter": "delimiter",
            "encoding": "encoding",
        }
        return {k: opts[o] for k, o in keys.items() if opts[o] is not None}

    def _run(self, study, user, mapping, opts) -> dict:
        if opts["save_mapping"]:
            services.save_mapping(actor=user, study=study, name=opts["save_mapping"], spec=mapping.to_spec())
        try:
            return services.run_import(
                actor=user,
                study=study,
                path=opts["file"],
                mapping=mapping,
                commit=not opts["dry_run"],
                progress=self._progress,
            )
        finally:
            self.stderr.write("")

    def _progress(self, done: int, total: int | None = None, message: str = "") -> None:
        if not total:
            self.stderr.write(f"\r{message}", ending="")
        else:
            width = 30
            filled = int(width * done / total)
            self.stderr.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {message:<40}", ending=""
            )
        sys.stderr.flush()

    def _print(self, report: dict, opts) -> None:
        for p in report["problems"]:
            self.stdout.write(f"{p['severity']}: {services.describe(p)}")
        enrolment = report.get("enrolment")
        if enrolment:
            verb = "enrolled" if report.get("committed") else "would enrol"
            self.stdout.write(
                f"{verb} {enrolment['count']} subject(s), ids {enrolment['ids']}, enrolment date from "
                f"{enrolment['date']}:"
            )
            for s in enrolment["subjects"]:
                self.stdout.write(
                    f"  row {s['row']}: {s['key']} at site {s['site']} ({s['arm']}), {s['date']}"
                )
        if report.get("not_imported"):
            self.stdout.write(f"Not imported (no mapping): {', '.join(report['not_imported'])}.")
        c = report["counts"]
        verb = "imported" if report.get("committed") else "would import"
        self.stdout.write(
            f"{c['rows']} row(s): {verb} {c['new']} new, {c['changed']} changed, {c['unchanged']} unchanged record(s); "
            f"{c['problems']} problem(s), {c['warnings']} warning(s)."
        )
        if opts["report"]:
            data = services.annotated_workbook(opts["file"], report, sheet=report["sheet"])
            opts["report"].write_bytes(data)
            self.stdout.write(f"Annotated workbook: {opts['report']}")
