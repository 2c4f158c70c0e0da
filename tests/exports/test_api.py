"""The REST API starts an export as the builder page does: same checks before any job, errors
that name the option, and a job whose result lists each format."""

from __future__ import annotations

import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from capture.api.tokens import create_api_token
from capture.jobs.models import Job


def _post(client, slug, token, body):
    return client.post(
        f"/api/v1/studies/{slug}/exports/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )


def _token():
    user = get_user_model().objects.get(username="statistician")
    return create_api_token(user=user, name="exports")[1]


def test_a_cohort_filter_over_unknown_items_is_a_400_naming_the_option(client, demo):
    response = _post(client, demo.study.slug, _token(), {"cohort": "[sex] = '1' and [age] >= 18"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["cohort"]
    assert errors["cohort"][0].startswith("The cohort filter names [age], which is not an item of this study")
    assert not Job.objects.exists()


def test_an_unknown_option_is_a_400_listing_the_known_ones(client, demo):
    response = _post(client, demo.study.slug, _token(), {"formats": ["csv"], "cohrt": "[gender] = 'male'"})
    assert response.status_code == 400
    assert "Unknown export option(s): cohrt" in response.json()["detail"]


def test_an_accepted_export_is_a_job_whose_result_lists_each_format(
    client, demo, django_capture_on_commit_callbacks
):
    token = _token()
    body = {
        "formats": ["csv", "dta"],
        "events": ["baseline"],
        "cohort": "[gender] = 'female' or [gender] = 'male'",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, demo.study.slug, token, body)
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["job"])
    status = client.get(response.json()["url"], HTTP_AUTHORIZATION=f"Token {token}").json()
    assert status["status"] == "succeeded", job.error
    assert [(f["format"], f["written"]) for f in job.result["formats"]] == [("csv", True), ("dta", True)]
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT) / job.result_file) as bundle:
        assert {"dataset.csv", "dataset.dta"} <= set(bundle.namelist())


def test_a_statistician_cannot_ask_the_api_for_identifiers(client, demo):
    response = _post(
        client, demo.study.slug, _token(), {"identified": True, "reason": "x", "date_mode": "none"}
    )
    assert response.status_code == 403
    assert not Job.objects.exists()
