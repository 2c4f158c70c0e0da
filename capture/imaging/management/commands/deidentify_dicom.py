from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.imaging.sharing import deidentify_tree

from ._common import get_study, refusal


class Command(BaseCommand):
    help = (
        "Write de-identified copies of the DICOM files under SRC to DST for sharing (e.g. with TCIA): "
        "PS3.15 Annex E Basic profile with Retain Longitudinal Temporal Information with Modified Dates. "
        "PatientName and PatientID become the subject id, dates move by the subject's date shift, UIDs "
        "are remapped consistently, private attributes are removed. Files of patients not linked to a "
        "subject, files without their UIDs, duplicate SOP Instance UIDs and files with BurnedInAnnotation YES "
        "are refused and listed. Images that commonly carry burned-in text (US, SC, OT, XA, ES, secondary "
        "capture) without BurnedInAnnotation NO are quarantined until a data manager releases them on the "
        "study's imaging quarantine page; run again after that. Check with check_deid."
    )

    def add_arguments(self, parser):
        parser.add_argument("src", type=Path)
        parser.add_argument("dst", type=Path)
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        add_actor_argument(parser)

    def handle(self, *args, src, dst, study, **options):
        actor = actor_from_options(options, "deidentify_dicom")
        try:
            report = deidentify_tree(actor=actor, study=get_study(study), src=src, dst=dst)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except PermissionDenied as exc:
            raise refusal(exc) from None
        for item in report.refused:
            self.stderr.write(f"refused: {item['file']}: {item['reason']}")
        for item in report.quarantined:
            self.stderr.write(f"quarantined: {item['file']}: {item['reason']}")
        self.stdout.write(
            f"{report.written} de-identified files written to {dst} for {len(report.subjects)} subjects; "
            f"{len(report.refused)} refused; {len(report.quarantined)} quarantined for pixel review."
        )
