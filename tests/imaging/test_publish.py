"""De-identified copies published to a research archive by STOW-RS: the real Orthanc of the test
session (conftest.orthanc) is the archive. Each instance is recorded; a failure is retried by
running again; running again sends nothing the archive holds; the timeline links to the archive."""

from __future__ import annotations

import io
import zipfile

import pytest
from dicomweb_client.api import DICOMwebClient
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.imaging import publish
from capture.imaging import services as imaging
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import PublishedInstance
from capture.imaging.sharing import deidentify_tree
from capture.jobs.models import Job
from capture.studies import pseudonyms

from .conftest import _free_port, dicom_copy


@pytest.fixture
def archive(orthanc, settings):
    url = f"{orthanc}/dicom-web"
    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"research": url}}
    return url


@pytest.fixture
def scans(linked, tmp_path, request):
    """Two CT instances of one study of subject A-0001 (PatientID MRN-1001), seeded per test."""
    seed = request.node.name[-40:]
    root = tmp_path / "scans"
    for name in ("1.dcm", "2.dcm"):
        dicom_copy("CT_small.dcm", root / name, patient_id="MRN-1001", study_date="20250301", study=seed)
    return root


def _in_archive(url: str, study_uid: str) -> list[str]:
    found = DICOMwebClient(url=url).search_for_instances(study_instance_uid=study_uid)
    return sorted(item["00080018"]["Value"][0] for item in found)


def _copy_and_record(study, scans) -> list[dict]:
    copies = deidentify_tree(actor=SYSTEM, study=study, src=scans, to_storage=True).copies
    publish.record(study=study, destination="research", copies=copies)
    return copies


def test_copies_are_sent_to_the_archive_and_recorded_per_instance(archive, study, scans):
    copies = _copy_and_record(study, scans)
    sent = publish.publish(actor=SYSTEM, study=study, destination="research")
    assert (sent["published"], sent["failed"]) == (2, 0), sent["errors"]
    rows = PublishedInstance.objects.filter(study=study, destination="research")
    assert {r.sop_uid for r in rows} == {c["sop_uid"] for c in copies}
    assert all(r.status == r.PUBLISHED and r.attempts == 1 and r.published_at for r in rows)
    study_uid = copies[0]["study_uid"]
    assert _in_archive(archive, study_uid) == sorted(c["sop_uid"] for c in copies)
    # What the archive holds is the de-identified copy: the subject id, not the PatientID.
    instance = DICOMwebClient(url=archive).search_for_instances(
        study_instance_uid=study_uid, fields=["PatientID"]
    )[0]
    assert instance["00100020"]["Value"] == ["A-0001"]


def test_running_again_sends_nothing_the_archive_holds(archive, study, scans):
    _copy_and_record(study, scans)
    publish.publish(actor=SYSTEM, study=study, destination="research")
    copies = _copy_and_record(study, scans)  # the same source: the same de-identified UIDs
    again = publish.publish(actor=SYSTEM, study=study, destination="research")
    assert (again["published"], again["failed"]) == (0, 0)
    assert PublishedInstance.objects.filter(study=study).count() == 2
    assert len(_in_archive(archive, copies[0]["study_uid"])) == 2


def test_an_unreachable_archive_is_recorded_and_the_next_run_sends_what_failed(
    archive, study, scans, settings
):
    settings.CAPTURE = {
        **settings.CAPTURE,
        "DICOMWEB_SERVERS": {"research": f"http://127.0.0.1:{_free_port()}"},
    }
    copies = _copy_and_record(study, scans)
    down = publish.publish(actor=SYSTEM, study=study, destination="research")
    assert (down["published"], down["failed"]) == (0, 2)
    row = PublishedInstance.objects.filter(study=study).first()
    assert row.status == row.FAILED and row.attempts == 1 and "STOW-RS failed" in row.error

    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"research": archive}}
    back = publish.publish(actor=SYSTEM, study=study, destination="research")
    assert (back["published"], back["failed"]) == (2, 0)
    row.refresh_from_db()
    assert row.status == row.PUBLISHED and row.attempts == 2 and row.error == ""
    assert len(_in_archive(archive, copies[0]["study_uid"])) == 2


def test_the_timeline_links_a_scan_to_the_archive_that_holds_it(
    archive, study, scans, subjects, personas, client
):
    ingest_folder(actor=SYSTEM, study=study, path=scans)
    copies = _copy_and_record(study, scans)
    publish.publish(actor=SYSTEM, study=study, destination="research")
    study_uid = copies[0]["study_uid"]
    assert study_uid == pseudonyms.remap_uid(study, str(imaging_source_uid(scans))), "one UID for both"

    client.force_login(personas["data_manager"])
    data = client.get(reverse("imaging:timeline_json", args=[study.slug, "A-0001"])).json()
    (scan,) = [s for s in data["imaging"] if s["study_uid"] == study_uid]
    assert scan["archives"] == [
        {"destination": "research", "instances": 2, "url": f"{archive}/studies/{study_uid}"}
    ]
    page = client.get(reverse("imaging:timeline", args=[study.slug, "A-0001"])).content.decode()
    assert f'href="{archive}/studies/{study_uid}"' in page


def imaging_source_uid(folder):
    import pydicom

    return pydicom.dcmread(sorted(folder.iterdir())[0]).StudyInstanceUID


def test_an_ingest_with_a_research_archive_publishes_de_identified_copies_and_can_run_again(
    archive, study, scans, personas, client, settings, django_capture_on_commit_callbacks
):
    settings.CAPTURE = {
        **settings.CAPTURE,
        "RESEARCH_ARCHIVE": "research",
        "DICOMWEB_SERVERS": {"research": f"http://127.0.0.1:{_free_port()}"},  # down at first
    }
    upload = io.BytesIO()
    with zipfile.ZipFile(upload, "w") as z:
        for path in sorted(scans.iterdir()):
            z.write(path, path.name)
    upload.seek(0)
    upload.name = "scans.zip"
    client.force_login(personas["data_manager"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imaging:ingest", args=[study.slug]), {"archive": upload})
    job = Job.objects.get(kind="imaging_ingest")
    assert job.status == Job.FAILED and "did not reach the archive 'research'" in job.error, job.error

    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"research": archive}}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("jobs:retry", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error
    assert job.result["archive"]["published"] == 2 and job.result["archive"]["failed"] == 0
    assert PublishedInstance.objects.filter(study=study, status=PublishedInstance.PUBLISHED).count() == 2
    assert imaging.visible_studies(personas["data_manager"], study).count() == 1
    page = client.get(reverse("imaging:ingest_job", args=[study.slug, job.pk])).content.decode()
    assert "research: 2 de-identified copies, 2 sent" in page
