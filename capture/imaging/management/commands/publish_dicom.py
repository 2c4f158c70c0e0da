from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.imaging import publish

from ._common import get_study, refusal


class Command(BaseCommand):
    help = (
        "Send the study's de-identified instances that are waiting or failed (written by deidentify_dicom "
        "--publish or an ingest with CAPTURE_RESEARCH_ARCHIVE) to the DICOMweb server SERVER by STOW-RS. "
        "Instances already in the archive are not sent again; what fails stays recorded and is sent by "
        "the next run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        parser.add_argument(
            "--to", required=True, metavar="SERVER", help="a name of CAPTURE_DICOMWEB_SERVERS"
        )
        add_actor_argument(parser)

    def handle(self, *args, study, to, **options):
        actor = actor_from_options(options, "publish_dicom")
        try:
            sent = publish.publish(actor=actor, study=get_study(study), destination=to)
        except (PermissionDenied, ValidationError) as exc:
            raise refusal(exc) from None
        self.stdout.write(f"{sent['published']} instances sent to {to}; {sent['failed']} failed.")
        if sent["failed"]:
            raise CommandError(f"{sent['errors'][0]['error']}; run the command again to send the rest.")
