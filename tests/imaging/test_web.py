import io
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import ImagingStudy, SourceIdentifier
from capture.jobs.models import Job

from .conftest import dicom_copy


def _urls(queued_pk=None):
    return {
        "list": reverse("imaging:list", args=["trial"]),
        "queue": reverse("imaging:queue", args=["trial"]),
        "ingest": reverse("imaging:ingest", args=["trial"]),
        "link": reverse("imaging:subject_link", args=["trial", "A-0001"]),
        "timeline": reverse("imaging:timeline", args=["trial", "A-0001"]),
        "timeline_json": reverse("imaging:timeline_json", args=["trial", "A-0001"]),
    }


PAGES = ["list", "queue", "ingest", "link", "timeline", "timeline_json"]
# persona -> expected status of each page in PAGES (GET). 404: the study or subject does not
# exist for them; 403: visible, but the role may not import images.
TABLE = {
    "admin": (200, 200, 200, 200, 200, 200),
    "data_manager": (200, 200, 200, 200, 200, 200),
    "pi": (200, 403, 403, 403, 200, 200),
    "coordinator_a": (200, 403, 403, 403, 200, 200),
    "coordinator_b": (200, 403, 403, 404, 404, 404),
    "statistician": (200, 403, 403, 403, 200, 200),
    "monitor": (200, 403, 403, 403, 200, 200),
    "outsider": (404, 404, 404, 404, 404, 404),
}


@pytest.mark.parametrize("persona", TABLE)
def test_every_imaging_page_answers_by_role_site_and_study(client, personas, subjects, persona):
    client.force_login(personas[persona])
    for page, url in _urls().items():
        expected = TABLE[persona][PAGES.index(page)]
        assert client.get(url).status_code == expected, f"{persona} GET {page}"


def test_anonymous_users_are_sent_to_log_in(client, subjects):
    for url in _urls().values():
        assert client.get(url).status_code == 302


@pytest.fixture
def queued_study(study, subjects, tmp_path):
    dicom_copy("CT_small.dcm", tmp_path / "q.dcm", patient_id="MRN-55", study_date="20250305", study="wq")
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    return ImagingStudy.objects.get()


@pytest.mark.parametrize(
    ("persona", "status"), [("coordinator_a", 403), ("statistician", 403), ("outsider", 404)]
)
def test_assigning_from_the_queue_is_refused_to_other_roles(client, personas, queued_study, persona, status):
    client.force_login(personas[persona])
    url = reverse("imaging:assign", args=["trial", queued_study.pk])
    response = client.post(url, {f"s{queued_study.pk}-subject": "A-0001"})
    assert response.status_code == status
    queued_study.refresh_from_db()
    assert queued_study.subject is None


def test_a_data_manager_assigns_from_the_queue_page(client, personas, queued_study):
    client.force_login(personas["data_manager"])
    page = client.get(reverse("imaging:queue", args=["trial"]))
    assert b"Assign" in page.content and b"2025-03-05" in page.content  # data managers see identifiers
    response = client.post(
        reverse("imaging:assign", args=["trial", queued_study.pk]),
        {f"s{queued_study.pk}-subject": "B-0001", f"s{queued_study.pk}-reason": "MRN checked"},
        follow=True,
    )
    assert b"Assigned to B-0001" in response.content
    queued_study.refresh_from_db()
    assert queued_study.subject.subject_id == "B-0001"


def _zip(folder) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    buffer.seek(0)
    buffer.name = "scans.zip"
    return buffer


def test_a_zip_upload_runs_as_a_job_and_lists_the_unreadable_files(
    client, personas, linked, dicom_tree, django_capture_on_commit_callbacks, settings
):
    client.force_login(personas["data_manager"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("imaging:ingest", args=["trial"]), {"archive": _zip(dicom_tree)})
    job = Job.objects.get()
    assert response.url == reverse("imaging:ingest_job", args=["trial", job.pk])
    assert job.status == Job.SUCCEEDED, job.error
    assert job.result["studies_new"] == 4 and job.result["linked"] == 3
    page = client.get(response.url)
    assert b"damaged.dcm" in page.content and b"README.txt" in page.content and b"progress" in page.content
    assert not (Path(settings.MEDIA_ROOT) / job.params["upload"]).exists(), (
        "the upload is deleted after the run"
    )
    assert ImagingStudy.objects.get(modalities="PT").source_kind == "upload"


def test_an_upload_that_is_not_a_zip_is_refused_with_a_hint(client, personas, subjects):
    client.force_login(personas["data_manager"])
    bad = io.BytesIO(b"hello")
    bad.name = "scan.dcm"
    response = client.post(reverse("imaging:ingest", args=["trial"]), {"archive": bad})
    assert response.status_code == 200 and b"Upload a .zip file" in response.content
    assert not Job.objects.exists()


def test_a_broken_zip_fails_the_job_with_a_clear_message(
    client, personas, subjects, django_capture_on_commit_callbacks
):
    client.force_login(personas["data_manager"])
    bad = io.BytesIO(b"PK not really a zip")
    bad.name = "scans.zip"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imaging:ingest", args=["trial"]), {"archive": bad})
    job = Job.objects.get()
    assert job.status == Job.FAILED and "is not a readable zip file" in job.error


def test_another_users_ingest_job_is_not_shown(
    client, personas, subjects, django_capture_on_commit_callbacks
):
    client.force_login(personas["data_manager"])
    bad = io.BytesIO(b"PK")
    bad.name = "x.zip"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imaging:ingest", args=["trial"]), {"archive": bad})
    job = Job.objects.get()
    client.force_login(personas["coordinator_a"])
    assert client.get(reverse("imaging:ingest_job", args=["trial", job.pk])).status_code == 404


def test_the_timeline_page_shows_the_picture_and_the_json_the_same_data(
    client, personas, linked, study, dicom_tree
):
    ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    client.force_login(personas["statistician"])
    page = client.get(reverse("imaging:timeline", args=["trial", "A-0001"]))
    assert b"<svg" in page.content and b"<script" not in page.content
    assert b"outside every window" in page.content  # the PET on day 20
    data = client.get(reverse("imaging:timeline_json", args=["trial", "A-0001"])).json()
    assert data["dates_shifted"] is True
    assert sorted(s["day"] for s in data["imaging"]) == [0, 20, 58]
    assert {s["event"] for s in data["imaging"]} == {"baseline", "week_8", None}


def test_a_data_manager_registers_an_identifier_on_the_link_page(client, personas, subjects, queued_study):
    client.force_login(personas["data_manager"])
    url = reverse("imaging:subject_link", args=["trial", "A-0001"])
    response = client.post(url, {"id-kind": "mrn", "id-value": "MRN-55"}, follow=True)
    assert b"1 queued studies linked" in response.content
    assert SourceIdentifier.objects.get().subject == subjects["a"]
    assert b"MRN-55" not in response.content


def test_the_link_page_says_how_to_configure_a_dicomweb_server(client, personas, subjects, settings):
    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {}}
    client.force_login(personas["data_manager"])
    page = client.get(reverse("imaging:subject_link", args=["trial", "A-0001"]))
    assert b"CAPTURE_DICOMWEB_SERVERS" in page.content


def test_the_imaging_list_shows_only_the_subjects_of_the_users_sites(
    client, personas, subjects, study, tmp_path
):
    from capture.imaging import services

    services.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="patient_id", value="PA")
    services.add_identifier(actor=SYSTEM, subject=subjects["b"], kind="patient_id", value="PB")
    dicom_copy("CT_small.dcm", tmp_path / "a.dcm", patient_id="PA", study_date="20250305", study="la")
    dicom_copy("MR_small.dcm", tmp_path / "b.dcm", patient_id="PB", study_date="20250305", study="lb")
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    client.force_login(personas["coordinator_a"])
    page = client.get(reverse("imaging:list", args=["trial"])).content
    assert b"A-0001" in page and b"B-0001" not in page and b"Queue" not in page
    client.force_login(personas["statistician"])
    page = client.get(reverse("imaging:list", args=["trial"])).content
    assert b"A-0001" in page and b"B-0001" in page
