"""Background jobs: run, report progress, fail clearly, recover from a dead worker, run again."""

import datetime as dt
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from capture.jobs import services
from capture.jobs.models import Job

CALLS: list[str] = []


def handler_ok(job, progress):
    progress(1, 2, "halfway")
    out = Path(job.params["media"]) / "result.csv"
    out.write_text("a,b\n1,2\n")
    progress(2, 2)
    return {"rows": 1, "file": out.name}


def handler_refuses(job, progress):
    raise services.JobError("Row 3, column 'age': 'abc' is not a whole number.")


def handler_crashes(job, progress):
    CALLS.append(job.params.get("tag", ""))
    if len(CALLS) == 1:
        raise RuntimeError("boom")
    return {"ok": True}


def _start(personas, study, handler, **params):
    return services.start_job(
        actor=personas["data_manager"],
        study=study,
        kind="test",
        title="Test job",
        handler=f"tests.jobs.test_jobs.{handler}",
        params=params,
    )


def test_job_runs_on_commit_and_records_result(personas, study, django_capture_on_commit_callbacks, tmp_path):
    with django_capture_on_commit_callbacks(execute=True):
        job = _start(personas, study, "handler_ok", media=str(tmp_path))
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.result == {"rows": 1, "file": "result.csv"}
    assert (job.done, job.total, job.percent, job.attempts) == (2, 2, 100, 1)


def test_job_error_is_shown_to_the_user(personas, study, django_capture_on_commit_callbacks, client):
    with django_capture_on_commit_callbacks(execute=True):
        job = _start(personas, study, "handler_refuses")
    client.force_login(personas["data_manager"])
    status = client.get(reverse("jobs:status", args=[job.pk])).json()
    assert status["status"] == "failed" and "'abc' is not a whole number" in status["error"]
    page = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "Run again" in page


def test_crashed_job_is_marked_failed_and_runs_again(personas, study, django_capture_on_commit_callbacks):
    CALLS.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job = _start(personas, study, "handler_crashes")
    job.refresh_from_db()
    assert job.status == Job.FAILED and "internal error" in job.error
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_job(actor=personas["data_manager"], job=job)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.attempts == 2 and len(CALLS) == 2


def test_job_whose_worker_died_is_recovered_as_failed(personas, study):
    job = _start(personas, study, "handler_ok")  # no commit callbacks: never runs, like a lost worker
    Job.objects.filter(pk=job.pk).update(
        status=Job.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert services.recover_stale_jobs() == 1
    job.refresh_from_db()
    assert job.status == Job.FAILED and "killed or crashed" in job.error


def test_only_the_starter_or_a_study_admin_sees_a_job(personas, study, client):
    job = _start(personas, study, "handler_ok")
    url = reverse("jobs:detail", args=[job.pk])
    for persona, expected in [
        ("data_manager", 200),
        ("admin", 200),
        ("statistician", 404),
        ("coordinator_a", 404),
        ("outsider", 404),
    ]:
        client.force_login(personas[persona])
        assert client.get(url).status_code == expected, persona


def test_download_is_offered_only_for_a_finished_job(personas, study, client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "out.csv").write_text("x\n")
    job = _start(personas, study, "handler_ok")
    Job.objects.filter(pk=job.pk).update(result_file="out.csv", status=Job.RUNNING)
    client.force_login(personas["data_manager"])
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404
    Job.objects.filter(pk=job.pk).update(status=Job.SUCCEEDED)
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"x\n"


def test_handlers_outside_allowed_packages_are_refused(personas, study):
    with pytest.raises(ValueError, match="not under an allowed package"):
        services.start_job(actor=personas["admin"], study=study, kind="x", title="x", handler="os.system")


def test_job_waits_in_the_database_queue_until_a_worker_runs_it(
    transactional_db, personas, study, settings, django_capture_on_commit_callbacks, tmp_path
):
    # transactional_db: the in-process db_worker closes the connection when it stops, which a
    # test wrapped in one transaction (on PostgreSQL) would not survive.
    from django.core.management import call_command

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    with django_capture_on_commit_callbacks(execute=True):
        job = _start(personas, study, "handler_ok", media=str(tmp_path))
    job.refresh_from_db()
    assert job.status == Job.QUEUED, "with the database backend nothing runs until a worker takes it"
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED
