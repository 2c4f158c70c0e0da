"""The object store down: an upload or an export fails with a message that says so, leaves no
object and no row behind, and the same job runs again once the store is back."""

from __future__ import annotations

import io

from django.urls import reverse

from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.imports.models import ImportUpload
from capture.jobs import services as jobs
from capture.jobs.models import Job
from tests import servers

from .conftest import use_s3


def _store_down(settings, monkeypatch, s3) -> None:
    """Every storage pointed at a port where nothing listens: as an object store that is down."""
    use_s3(settings, monkeypatch, f"http://127.0.0.1:{servers.free_port()}", s3.name, s3.prefix)


def test_an_upload_while_the_store_is_down_is_refused_with_a_clear_message_and_leaves_nothing(
    s3, subjects, personas, settings, monkeypatch, client
):
    _store_down(settings, monkeypatch, s3)
    client.force_login(personas["data_manager"])
    sheet = io.BytesIO(b"Patient,Sex\nA-0001,F\n")
    sheet.name = "sheet.csv"
    response = client.post(reverse("imports:index", args=[subjects["a"].study.slug]), {"file": sheet})
    assert response.status_code == 200
    page = response.content.decode()
    assert "The file store could not save" in page and "object store" in page, page[-2000:]
    assert not ImportUpload.objects.exists()


def test_an_export_while_the_store_is_down_fails_offers_nothing_and_runs_again_when_it_is_back(
    s3, subjects, personas, settings, monkeypatch, client, django_capture_on_commit_callbacks
):
    stat = personas["statistician"]
    _store_down(settings, monkeypatch, s3)
    with django_capture_on_commit_callbacks(execute=True):
        job = request_export(
            actor=stat, study=subjects["a"].study, spec=ExportSpec(layout="wide", formats=["csv"])
        )
    job.refresh_from_db()
    assert job.status == Job.FAILED and job.result_file == ""
    assert "The file store could not" in job.error and "try again" in job.error, job.error
    client.force_login(stat)
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404

    use_s3(settings, monkeypatch, s3.endpoint, s3.name, s3.prefix)  # the store is back
    assert s3.keys("exports/") == [], "no half-written bundle"
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry_job(actor=stat, job=job)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.attempts == 2, job.error
    assert s3.keys("exports/") == [job.result_file]
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"PK"


def test_a_re_run_removes_the_bundle_a_killed_attempt_left_unoffered(
    s3, subjects, personas, django_capture_on_commit_callbacks
):
    stat = personas["statistician"]
    with django_capture_on_commit_callbacks(execute=True):
        job = request_export(
            actor=stat, study=subjects["a"].study, spec=ExportSpec(layout="wide", formats=["csv"])
        )
    job.refresh_from_db()
    first = job.result_file
    # As a worker killed after the save and before the job offered its file would leave it:
    Job.objects.filter(pk=job.pk).update(status=Job.FAILED, result_file="")
    job.refresh_from_db()
    assert s3.keys("exports/") == [first]
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry_job(actor=stat, job=job)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error
    assert s3.keys("exports/") == [job.result_file], "the orphan of the killed attempt is gone"
