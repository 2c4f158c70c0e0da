"""Capture on object storage: uploads, import jobs, export bundles and de-identified DICOM copies
go to a real S3 server (moto, tests/storage/s3server.py) and come back from it; nothing is written
under MEDIA_ROOT, so a worker on another host would find every file."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
import zipfile
from pathlib import Path

from django.urls import reverse

from capture import storage
from capture.accounts.system import SYSTEM
from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.imaging import services as imaging
from capture.imaging.sharing import deidentify_tree
from capture.imports import services as imports
from capture.jobs import services as jobs
from capture.jobs.models import Job
from capture.records.models import FormRecord
from tests.imaging.conftest import dicom_copy

SPEC = {
    "subject_column": "Patient",
    "event": "baseline",
    "date_format": "DMY",
    "columns": [
        {"column": "Sex", "form": "demographics", "item": "sex", "values": {"F": "1", "M": "2"}},
        {"column": "Age", "form": "demographics", "item": "age"},
    ],
}
SHEET = b"Patient,Sex,Age\nA-0001,F,50\nB-0001,M,61\n"


def _media_is_empty(settings) -> bool:
    root = Path(settings.MEDIA_ROOT)
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def _run(django_capture_on_commit_callbacks, **kwargs) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_job(**kwargs)
    job.refresh_from_db()
    return job


def test_an_upload_is_imported_by_a_job_from_the_bucket_and_its_report_comes_back(
    s3, subjects, personas, settings, client, django_capture_on_commit_callbacks
):
    dm = personas["data_manager"]
    study = subjects["a"].study
    upload = imports.store_upload(actor=dm, study=study, site=None, name="sheet.csv", chunks=[SHEET])
    assert s3.keys("imports/") == [upload.path], "the upload is an object of the bucket"
    assert upload.path.startswith(f"imports/{study.slug}/") and upload.size == len(SHEET)

    params = {"upload": str(upload.pk), "spec": SPEC}
    dry = _run(
        django_capture_on_commit_callbacks, actor=dm, study=study, kind="import", title="Dry run",
        handler="capture.imports.jobs.run_import", params=params | {"commit": False},
    )  # fmt: skip
    assert dry.status == Job.SUCCEEDED, dry.error
    done = _run(
        django_capture_on_commit_callbacks, actor=dm, study=study, kind="import", title="Import",
        handler="capture.imports.jobs.run_import", params=params | {"commit": True},
    )  # fmt: skip
    assert done.status == Job.SUCCEEDED and done.result["counts"]["new"] == 2, done.error
    assert FormRecord.objects.filter(form_name="demographics").count() == 2

    client.force_login(dm)
    report = client.get(reverse("imports:report", args=[study.slug, upload.pk]))
    assert report.status_code == 200 and report.content[:2] == b"PK", "the annotated workbook, read from S3"
    assert _media_is_empty(settings), "nothing may pass through the local media folder"


def test_an_export_bundle_is_saved_to_the_bucket_and_downloaded_by_its_owner_only(
    s3, subjects, personas, settings, client, django_capture_on_commit_callbacks
):
    stat = personas["statistician"]
    study = subjects["a"].study
    with django_capture_on_commit_callbacks(execute=True):
        job = request_export(actor=stat, study=study, spec=ExportSpec(layout="tidy", formats=["csv"]))
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error
    assert s3.keys("exports/") == [job.result_file]
    assert job.result_file == f"exports/{study.pk}/{job.result['file']}"

    client.force_login(stat)
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(bundle.read(entry["name"])).hexdigest() == entry["sha256"]

    client.force_login(personas["coordinator_a"])
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404, (
        "the permission check stays"
    )
    assert _media_is_empty(settings)


def test_with_signed_links_a_download_redirects_to_a_short_lived_link_of_the_bucket(
    s3, subjects, personas, settings, client, django_capture_on_commit_callbacks
):
    settings.CAPTURE = {**settings.CAPTURE, "STORAGE_SIGNED_URLS": True}
    stat = personas["statistician"]
    with django_capture_on_commit_callbacks(execute=True):
        job = request_export(
            actor=stat, study=subjects["a"].study, spec=ExportSpec(layout="wide", formats=["csv"])
        )
    job.refresh_from_db()
    client.force_login(stat)
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 302
    link = response["Location"]
    assert link.startswith(s3.endpoint) and "X-Amz-Expires=300" in link and "X-Amz-Signature=" in link
    with urllib.request.urlopen(link, timeout=10) as fetched:  # noqa: S310 - the local test server
        assert fetched.headers["Content-Disposition"].startswith("attachment")
        assert zipfile.ZipFile(io.BytesIO(fetched.read())).namelist()
    client.force_login(personas["outsider"])
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404


def test_de_identified_copies_go_to_the_bucket_under_the_same_names_on_a_re_run(
    s3, subjects, tmp_path, settings
):
    imaging.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="patient_id", value="MRN-1001")
    src = tmp_path / "incoming"
    dicom_copy("CT_small.dcm", src / "ct.dcm", patient_id="MRN-1001", study_date="20250301", study="s3-ct")
    dicom_copy("MR_small.dcm", src / "mr.dcm", patient_id="MRN-1001", study_date="20250428", study="s3-mr")
    study = subjects["a"].study

    first = deidentify_tree(actor=SYSTEM, study=study, src=src, to_storage=True)
    names = s3.keys("deid/")
    assert first.written == 2 and len(names) == 2, first.refused
    assert all(name.startswith(f"deid/{study.slug}/A-0001/") and name.endswith(".dcm") for name in names)
    assert sorted(copy["name"] for copy in first.copies) == names
    again = deidentify_tree(actor=SYSTEM, study=study, src=src, to_storage=True)
    assert again.written == 2 and s3.keys("deid/") == names, "a re-run writes the same objects"
    with storage.get(storage.IMAGES).open(names[0], "rb") as handle:
        assert handle.read()[128:132] == b"DICM"
    assert _media_is_empty(settings)


def test_a_dicom_zip_upload_is_ingested_by_a_job_from_the_bucket_and_then_deleted(
    s3, subjects, personas, tmp_path, client, settings, django_capture_on_commit_callbacks
):
    dicom_copy(
        "CT_small.dcm", tmp_path / "z" / "ct.dcm", patient_id="MRN-9", study_date="20250301", study="z"
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / "z" / "ct.dcm", "ct.dcm")
    archive.seek(0)
    archive.name = "scans.zip"
    client.force_login(personas["data_manager"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("imaging:ingest", args=[subjects["a"].study.slug]), {"archive": archive}
        )
    assert response.status_code == 302
    job = Job.objects.get(kind="imaging_ingest")
    assert job.status == Job.SUCCEEDED and job.result["studies_new"] == 1, job.error
    assert s3.keys("imaging-uploads/") == [], "the upload is deleted from the bucket after the run"
    assert _media_is_empty(settings)
