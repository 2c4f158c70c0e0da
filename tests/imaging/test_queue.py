import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging import services
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import ImagingStudy, SourceIdentifier

from .conftest import dicom_copy


@pytest.fixture
def queued(study, subjects, tmp_path):
    dicom_copy("CT_small.dcm", tmp_path / "1.dcm", patient_id="MRN-7", study_date="20250305", study="q1")
    dicom_copy("MR_small.dcm", tmp_path / "2.dcm", patient_id="MRN-7", study_date="20250420", study="q2")
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    return ImagingStudy.objects.unassigned().order_by("pending_date")


def test_a_data_manager_assigns_a_queued_study_and_the_patients_others_follow(personas, subjects, queued):
    first = queued.first()
    count = services.assign_study(
        actor=personas["data_manager"], imaging_study=first, subject=subjects["a"], reason="checked the MRN"
    )
    assert count == 2
    a = subjects["a"]
    assert ImagingStudy.objects.filter(subject=a).count() == 2
    first.refresh_from_db()
    assert first.pending_date is None
    assert first.study_date == dt.date(2025, 3, 5) + dt.timedelta(days=a.date_shift_days)
    assert SourceIdentifier.objects.get(subject=a).kind == "patient_id"
    events = AuditEvent.objects.filter(action="imaging.assign")
    assert events.count() == 2 and events.first().actor == personas["data_manager"]
    assert events.filter(reason="checked the MRN").exists()


def test_an_assigned_study_cannot_be_assigned_again(personas, subjects, queued):
    first = queued.first()
    services.assign_study(actor=personas["data_manager"], imaging_study=first, subject=subjects["a"])
    with pytest.raises(ValidationError, match="already assigned"):
        services.assign_study(actor=personas["data_manager"], imaging_study=first, subject=subjects["b"])


@pytest.mark.parametrize("persona", ["coordinator_a", "statistician", "monitor", "pi"])
def test_roles_without_import_permission_may_not_assign(personas, subjects, queued, persona):
    with pytest.raises(PermissionDenied):
        services.assign_study(actor=personas[persona], imaging_study=queued.first(), subject=subjects["a"])


def test_the_outsider_cannot_assign_into_a_study_they_do_not_see(personas, subjects, queued):
    with pytest.raises(PermissionDenied):
        services.assign_study(actor=personas["outsider"], imaging_study=queued.first(), subject=subjects["a"])


def test_a_subject_of_another_study_is_refused(personas, subjects, queued, other_study):
    from capture.studies.services import enroll_subject

    stranger = enroll_subject(
        actor=SYSTEM, study=other_study, site=other_study.sites.get(), enrollment_date=dt.date(2025, 3, 1)
    )
    with pytest.raises(ValidationError, match="another study"):
        services.assign_study(actor=personas["admin"], imaging_study=queued.first(), subject=stranger)


def test_registering_an_identifier_links_the_queued_studies_that_carry_it(personas, subjects, queued):
    _, linked = services.add_identifier(
        actor=personas["data_manager"], subject=subjects["b"], kind="mrn", value="MRN-7"
    )
    assert linked == 2 and not ImagingStudy.objects.unassigned().exists()


def test_one_identifier_cannot_name_two_subjects(personas, subjects):
    services.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="mrn", value="MRN-9")
    with pytest.raises(ValidationError, match="already linked to another subject"):
        services.add_identifier(actor=SYSTEM, subject=subjects["b"], kind="mrn", value="MRN-9")


@pytest.mark.parametrize("persona", ["coordinator_a", "statistician", "outsider"])
def test_only_importers_register_identifiers(personas, subjects, persona):
    with pytest.raises(PermissionDenied):
        services.add_identifier(actor=personas[persona], subject=subjects["a"], kind="mrn", value="M-1")
    assert not SourceIdentifier.objects.exists()
