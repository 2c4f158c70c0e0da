from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.imaging import dicomweb, publish
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
        "study's imaging quarantine page; run again after that. Check with check_deid. With --to-storage "
        "the copies go to the images storage (CAPTURE_STORAGE) instead of, or besides, DST; with --publish "
        "SERVER they are also sent to that DICOMweb server (a name of CAPTURE_DICOMWEB_SERVERS) by STOW-RS, "
        "each instance recorded; running again sends only what the archive does not hold yet."
    )

    def add_arguments(self, parser):
        parser.add_argument("src", type=Path)
        parser.add_argument("dst", type=Path, nargs="?", help="a folder for the copies")
        parser.add_argument("--to-storage", action="store_true", help="save the copies to the images storage")
        parser.add_argument("--publish", metavar="SERVER", help="send the copies to this DICOMweb server")
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        add_actor_argument(parser)

    def handle(self, *args, src, dst, study, to_storage, publish, **options):
        actor = actor_from_options(options, "deidentify_dicom")
        study = get_study(study)
        try:
            if publish:
                dicomweb.server_url(publish)  # an unknown server stops the run before any copy
            report = deidentify_tree(
                actor=actor, study=study, src=src, dst=dst, to_storage=to_storage or bool(publish)
            )
            sent = self._publish(actor, study, publish, report) if publish else None
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except (PermissionDenied, ValidationError) as exc:
            raise refusal(exc) from None
        for item in report.refused:
            self.stderr.write(f"refused: {item['file']}: {item['reason']}")
        for item in report.quarantined:
            self.stderr.write(f"quarantined: {item['file']}: {item['reason']}")
        where = " and ".join(
            ([str(dst)] if dst else []) + (["the images storage"] if to_storage or publish else [])
        )
        self.stdout.write(
            f"{report.written} de-identified files written to {where} for {len(report.subjects)} subjects; "
            f"{len(report.refused)} refused; {len(report.quarantined)} quarantined for pixel review."
        )
        if sent is not None:
            self.stdout.write(f"{sent['published']} instances sent to {publish}; {sent['failed']} failed.")
            if sent["failed"]:
                raise CommandError(f"{sent['errors'][0]['error']}; run the command again to send the rest.")

    def _publish(self, actor, study, destination, report) -> dict:
        publish.record(study=study, destination=destination, copies=report.copies)
        return publish.publish(actor=actor, study=study, destination=destination)
