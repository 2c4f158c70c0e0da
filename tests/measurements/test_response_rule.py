"""The study's response rule: set on the Settings page by a study administrator, audited, and the
study's responses recomputed (in the request, or as a background job for a large study)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.jobs.models import Job
from capture.jobs.services import run_job
from capture.measurements import response_rule
from capture.measurements.models import BestResponse, Lesion, ResponseRule
from capture.studies import services
from tests.measurements.factories import lesion, measure, report

CONFIRMED = {"confirm": True, "confirm_min_days": 28, "sd_min_days": 42, "response_item": "overall_response"}


@pytest.fixture
def unconfirmed_pr(subjects):
    """Patient a: 50 -> 30 (PR, day 56) -> 32 (day 120, SD against baseline: -36 % is still PR).
    Without confirmation: PR. With it: the PR of day 56 is confirmed by the PR 64 days later: PR.
    A shorter follow-up (day 70, 14 days later) does not confirm under 28 days: SD (day 56 >= 42)."""
    a = subjects["a"]
    t1 = lesion(a, "T1", role=Lesion.TARGET)
    measure(report(a, 0), t1, 50)
    measure(report(a, 56), t1, 30)
    measure(report(a, 70), t1, 31)
    return a


def _best(subject):
    return BestResponse.objects.get(subject=subject).response


def test_a_change_of_rule_is_audited_and_recomputes_the_study(personas, unconfirmed_pr):
    study = unconfirmed_pr.study
    response_rule.set_response_rule(actor=personas["admin"], study=study, **{**CONFIRMED, "confirm": False})
    assert _best(unconfirmed_pr) == "PR"
    response_rule.set_response_rule(actor=personas["admin"], study=study, **CONFIRMED)
    assert _best(unconfirmed_pr) == "SD"  # the PR of day 56 is confirmed only 14 days later
    event = AuditEvent.objects.filter(study=study, action="study.response_rule").latest("seq")
    assert (event.before["confirm"], event.after["confirm"]) == (False, True)


@pytest.mark.parametrize(
    "persona", ["data_manager", "pi", "monitor", "statistician", "coordinator_a", "outsider"]
)
def test_only_a_study_manager_changes_the_rule(personas, study, persona):
    with pytest.raises(PermissionDenied):
        response_rule.set_response_rule(actor=personas[persona], study=study, **CONFIRMED)
    assert not ResponseRule.objects.filter(study=study).exists()


def test_a_closed_study_keeps_its_rule(personas, study):
    services.set_study_status(actor=personas["admin"], study=study, status="closed", reason="done")
    study.refresh_from_db()
    with pytest.raises(ValidationError, match="closed"):
        response_rule.set_response_rule(actor=personas["admin"], study=study, **CONFIRMED)


def test_a_large_study_recomputes_in_a_background_job(personas, unconfirmed_pr, monkeypatch):
    monkeypatch.setattr(response_rule, "LARGE_STUDY", 0)
    response_rule.set_response_rule(actor=personas["admin"], study=unconfirmed_pr.study, **CONFIRMED)
    job = Job.objects.get(study=unconfirmed_pr.study, kind="responses")
    assert job.handler == response_rule.HANDLER
    assert not BestResponse.objects.filter(subject=unconfirmed_pr).exists()  # not computed in the request
    done = run_job(str(job.pk))
    assert (done.status, done.result) == (Job.SUCCEEDED, {"subjects": 1})
    assert _best(unconfirmed_pr) == "SD"


def test_the_settings_page_saves_the_rule(client, personas, unconfirmed_pr):
    client.force_login(personas["admin"])
    url = reverse("administration:settings", args=["trial"])
    assert "Response (RECIST 1.1)" in client.get(url).content.decode()
    posted = {
        "do": "response",
        "confirm": "1",
        "confirm_min_days": "28",
        "sd_min_days": "42",
        "response_item": "",
    }
    assert client.post(url, posted).status_code == 302
    rule = ResponseRule.objects.get(study=unconfirmed_pr.study)
    assert (rule.confirm, rule.response_item) == (True, "")
    assert _best(unconfirmed_pr) == "SD"
    refused = client.post(url, {**posted, "confirm_min_days": "0"})
    assert refused.status_code == 200 and "greater than or equal to 1" in refused.content.decode()
