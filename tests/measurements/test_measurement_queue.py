"""The measurement queue: who may see it and assign from it (the imaging queue's rules), what an
assignment does (values stored, the patient's other reports follow), and its pages."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import SourceIdentifier
from capture.measurements import queue
from capture.measurements.models import Lesion, Measurement, MeasurementReport

from . import srfixtures


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def queued(study, subjects, tmp_path):
    """Two reports of an unknown patient (days 0 and 56 after 2025-03-01)."""
    srfixtures.one_report(tmp_path / "in" / "1.dcm", patient_id="MRN-Q", date="20250301", seed="q1")
    srfixtures.one_report(tmp_path / "in" / "2.dcm", patient_id="MRN-Q", date="20250426", seed="q2")
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path / "in")
    return MeasurementReport.objects.filter(subject__isnull=True).order_by("pending_date")


@pytest.mark.django_db
def test_a_data_manager_assigns_a_report_and_the_patients_other_report_follows(personas, subjects, queued):
    a = subjects["a"]
    first = queued.first()
    count = queue.assign(actor=personas["data_manager"], report=first, subject=a, reason="checked the MRN")
    assert count == 2
    reports = MeasurementReport.objects.filter(subject=a).order_by("report_date")
    assert [r.event for r in reports] == ["baseline", "week_8"]
    assert reports[0].report_date == dt.date(2025, 3, 1) + dt.timedelta(days=a.date_shift_days)
    assert all(r.pending_values == [] and r.pending_date is None for r in reports)
    assert Measurement.objects.filter(report__subject=a).count() == 6
    assert Lesion.objects.filter(subject=a).count() == 3
    assert SourceIdentifier.objects.get(subject=a).kind == "patient_id"
    assigned = AuditEvent.objects.filter(action="measurements.report.assign")
    assert assigned.count() == 2 and assigned.filter(reason="checked the MRN").exists()


@pytest.mark.django_db
def test_an_assigned_report_cannot_be_assigned_again(personas, subjects, queued):
    first = queued.first()
    queue.assign(actor=personas["data_manager"], report=first, subject=subjects["a"])
    with pytest.raises(ValidationError, match="already assigned"):
        queue.assign(actor=personas["data_manager"], report=first, subject=subjects["b"])


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["coordinator_a", "statistician", "monitor", "pi", "outsider"])
def test_roles_without_the_link_permission_may_not_assign_or_see_the_queue(
    personas, subjects, queued, persona
):
    with pytest.raises(PermissionDenied):
        queue.assign(actor=personas[persona], report=queued.first(), subject=subjects["a"])
    with pytest.raises(PermissionDenied):
        queue.queue(personas[persona], queued.first().study)
    assert MeasurementReport.objects.filter(subject__isnull=True).count() == 2


@pytest.mark.django_db
def test_a_subject_of_another_study_is_refused(personas, queued, other_study):
    from capture.studies.services import enroll_subject

    stranger = enroll_subject(
        actor=SYSTEM, study=other_study, site=other_study.sites.get(), enrollment_date=dt.date(2025, 3, 1)
    )
    with pytest.raises(ValidationError, match="another study"):
        queue.assign(actor=personas["admin"], report=queued.first(), subject=stranger)


# ---------------------------------------------------------------------------------- pages


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_queue_page_assigns_a_report(client, personas, subjects, queued):
    login(client, personas["data_manager"])
    page = client.get(reverse("measurements:queue", args=["trial"]))
    assert page.status_code == 200 and page.content.decode().count("<form") >= 2
    row = queued.first()
    response = client.post(
        reverse("measurements:assign", args=["trial", row.pk]),
        {f"r{row.pk}-subject": subjects["a"].subject_id, f"r{row.pk}-reason": "MRN checked"},
        follow=True,
    )
    assert "Report assigned to A-0001 and 1 more of the same patient" in response.content.decode()
    listing = client.get(reverse("measurements:list", args=["trial"])).content.decode()
    assert listing.count(">A-0001</a>") == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "status"),
    [("coordinator_a", 403), ("statistician", 403), ("monitor", 403), ("pi", 403), ("outsider", 404)],
)
def test_the_queue_pages_refuse_other_roles_and_studies(client, personas, subjects, queued, persona, status):
    login(client, personas[persona])
    row = queued.first()
    assert client.get(reverse("measurements:queue", args=["trial"])).status_code == status
    posted = client.post(
        reverse("measurements:assign", args=["trial", row.pk]),
        {f"r{row.pk}-subject": subjects["a"].subject_id},
    )
    assert posted.status_code == status
    assert MeasurementReport.objects.filter(subject__isnull=True).count() == 2


@pytest.mark.django_db
def test_the_report_list_shows_only_subjects_the_user_sees_with_shifted_dates_when_de_identified(
    client, personas, subjects, queued
):
    queue.assign(actor=SYSTEM, report=queued.first(), subject=subjects["b"])
    login(client, personas["coordinator_a"])
    assert "B-0001" not in client.get(reverse("measurements:list", args=["trial"])).content.decode()
    client.logout()
    login(client, personas["statistician"])
    page = client.get(reverse("measurements:list", args=["trial"])).content.decode()
    assert "B-0001" in page and "2025-03-01" not in page
    shifted = dt.date(2025, 3, 1) + dt.timedelta(days=subjects["b"].date_shift_days)
    assert shifted.isoformat() in page
