"""A job's page in Chromium (issue 16, item 10): a finished job's page stays still (it reloaded
itself about five times a second when the job had no file and no error to show), and a running
job's page polls less often the longer the job runs."""

import pytest
from django.urls import reverse
from django.utils import timezone

from capture.jobs import services
from capture.jobs.models import Job
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name
from tests.web.test_ecrf_browser import log_in

pytestmark = pytest.mark.browser


def _job(personas, study, status):
    job = services.start_job(
        actor=personas["data_manager"],
        study=study,
        kind="test",
        title="Test job",
        handler="tests.jobs.test_jobs.handler_ok",
        params={},
    )
    Job.objects.filter(pk=job.pk).update(
        status=status,
        error="",  # succeeded (or running) with neither an error nor a file to show
        result_file="",
        finished_at=timezone.now() if status == Job.SUCCEEDED else None,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    return job


def _watch(page, live_server, job, seconds):
    """(status polls, page loads) while the job's page is open for `seconds`."""
    polls, loads = [], []
    status_url = reverse("jobs:status", args=[job.pk])
    page.on("request", lambda r: polls.append(r.url) if status_url in r.url else None)
    page.on("load", lambda: loads.append(1))
    page.goto(live_server.url + reverse("jobs:detail", args=[job.pk]))
    page.wait_for_timeout(seconds * 1000)  # not time.sleep: Playwright delivers events while it waits
    return len(polls), len(loads)


def test_a_finished_jobs_page_neither_polls_nor_reloads(
    live_server,
    personas,
    ecrf_study,
    browser,  # noqa: F811
):
    job = _job(personas, ecrf_study, Job.SUCCEEDED)
    page = log_in(browser, live_server, "data_manager")
    polls, loads = _watch(page, live_server, job, 2.5)
    assert (polls, loads) == (0, 1)
    assert page.problems == []


def test_a_running_jobs_page_polls_less_and_less_often(
    live_server,
    personas,
    ecrf_study,
    browser,  # noqa: F811
):
    job = _job(personas, ecrf_study, Job.RUNNING)
    page = log_in(browser, live_server, "data_manager")
    polls, loads = _watch(page, live_server, job, 7)
    # Every second would be 7; backing off from 1 s by half again each time gives 4 (1, 2.5, 4.75, 8.1 s).
    assert 2 <= polls <= 4 and loads == 1
    assert page.problems == []
