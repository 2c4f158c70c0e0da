from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.imaging.ingest import ingest_folder

from ._common import get_study, refusal


class Command(BaseCommand):
    help = (
        "Index the DICOM files under PATH into a study: headers only (no pixel data is read or kept), "
        "grouped into studies and series, read on every core. A study whose PatientID or accession "
        "hash names a subject is linked to it; the others wait in the imaging queue. Running it "
        "again on the same files adds nothing. Unreadable files are listed with the reason. Measurement "
        "reports (DICOM SR, TID 1500) among the files become measurements of their subject and timepoint "
        "(docs/imaging.md, Measurement reports); a malformed report is listed with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        add_actor_argument(parser)
        parser.add_argument(
            "--processes", type=int, default=None, help="worker processes (default: all cores)"
        )

    def handle(self, *args, path, study, processes, **options):
        actor = actor_from_options(options, "ingest_dicom")
        try:
            report = ingest_folder(actor=actor, study=get_study(study), path=path, processes=processes)
        except (PermissionDenied, ValidationError) as exc:
            raise refusal(exc) from None
        for item in report.unreadable:
            self.stderr.write(f"unreadable: {item['file']}: {item['reason']}")
        self.stdout.write(
            f"{report.files} files: {report.studies_new} new studies ({report.linked} linked, {report.queued} "
            f"queued), {report.series_new} new series, {report.instances_new} new instances, "
            f"{len(report.unreadable)} unreadable."
        )
        if report.measurements:
            m = report.measurements
            self.stdout.write(
                f"Measurement reports: {m['stored']} stored ({m['linked']} linked, {m['queued']} queued), "
                f"{m['already']} already stored, {m['refused']} refused."
            )
