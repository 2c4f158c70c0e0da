from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.imaging import dicomweb

from ._common import get_study, refusal


class Command(BaseCommand):
    help = (
        "Search a configured DICOMweb server (QIDO-RS) and link its studies. With --subject and "
        "--patient-id: register that PatientID for the subject (only its hash is kept) and link the "
        "patient's studies. Without: index every study on the server; those whose PatientID hash names "
        "a subject are linked, the rest wait in the imaging queue. Servers: CAPTURE_DICOMWEB_SERVERS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="the study's short name (slug)")
        add_actor_argument(parser)
        parser.add_argument("--server", required=True, help="a name from CAPTURE_DICOMWEB_SERVERS")
        parser.add_argument("--subject", default="", help="a subject id, e.g. A-0001")
        parser.add_argument("--patient-id", default="", help="the subject's PatientID in the archive")

    def handle(self, *args, study, server, subject, patient_id, **options):
        actor = actor_from_options(options, "link_dicomweb")
        study_obj = get_study(study)
        subject_obj = None
        if subject:
            subject_obj = study_obj.subjects.filter(subject_id=subject).first()
            if subject_obj is None:
                raise CommandError(f"No subject {subject!r} in {study_obj.slug}.")
        try:
            result = dicomweb.link(
                actor=actor, study=study_obj, server=server, subject=subject_obj, patient_id=patient_id
            )
        except (PermissionDenied, ValidationError) as exc:
            raise refusal(exc) from None
        self.stdout.write(
            f"{result['studies_found']} studies found on {server}: {result['studies_new']} new "
            f"({result['linked']} linked, {result['queued']} queued)."
        )
