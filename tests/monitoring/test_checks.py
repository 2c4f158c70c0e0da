"""Running the data quality rules over a study: findings stored with a link to their field,
kept across runs with their exclusion (audited) or query, rules from the definitions and from
the web, the background job with progress, and the nightly command."""

import shutil

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.urls import reverse
from pydantic import ValidationError as SchemaError

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.definitions.loader import load_definitions
from capture.definitions.schema import FormFile
from capture.jobs.models import Job
from capture.monitoring import checks, jobs
from capture.monitoring.models import Discrepancy
from capture.records.models import FormRecord
from capture.records.services import save_record
from tests.conftest import BASIC


def save(personas, subject, values, coordinator="coordinator_a"):
    return save_record(
        actor=personas[coordinator],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=values,
    )


def found(study):
    return sorted(
        Discrepancy.objects.filter(study=study).values_list("record__subject__subject_id", "rule", "field")
    )


def bad_age(record):
    # The validator refuses 150 on entry; data imported before a range was tightened look like this.
    FormRecord.objects.filter(pk=record.pk).update(data={**record.data, "age": 150})


def test_a_run_stores_each_finding_and_drops_what_is_fixed(personas, subjects, study):
    a = save(personas, subjects["a"], {"sex": "1", "age": 54})
    bad_age(a)
    save(personas, subjects["b"], {"age": 40}, "coordinator_b")  # sex is required
    run = checks.run_checks(actor=personas["monitor"], study=study)
    assert (run.records, run.found) == (2, 2)
    assert found(study) == [("A-0001", "range", "age"), ("B-0001", "required", "sex")]
    FormRecord.objects.filter(pk=a.pk).update(data={"sex": "1", "age": 54})
    checks.run_checks(actor=personas["monitor"], study=study)
    assert found(study) == [("B-0001", "required", "sex")]


def test_an_exclusion_needs_a_reason_is_audited_and_survives_the_next_run(personas, subjects, study):
    save(personas, subjects["b"], {"age": 40}, "coordinator_b")
    checks.run_checks(actor=personas["monitor"], study=study)
    finding = Discrepancy.objects.get()
    with pytest.raises(ValidationError):
        checks.exclude(actor=personas["data_manager"], discrepancy=finding, reason=" ")
    checks.exclude(actor=personas["data_manager"], discrepancy=finding, reason="Sex not collected at site B")
    event = AuditEvent.objects.get(action="data_quality.exclude")
    assert (event.actor_label, event.reason) == ("data_manager", "Sex not collected at site B")
    checks.run_checks(actor=personas["monitor"], study=study)
    assert Discrepancy.objects.get().excluded


def test_a_finding_becomes_a_query_on_its_field_in_one_click(client, personas, subjects, study):
    record = save(personas, subjects["b"], {"age": 40}, "coordinator_b")
    checks.run_checks(actor=personas["monitor"], study=study)
    finding = Discrepancy.objects.get()
    client.force_login(personas["monitor"])
    client.post(reverse("monitoring:to_query", args=["trial", finding.pk]))
    query = record.queries.get()
    assert (query.field, query.messages.get().text) == ("sex", "Sex: required but blank")
    page = client.get(reverse("monitoring:data_quality", args=["trial"])).content.decode()
    link = reverse("records:entry", args=["trial", "B-0001", "baseline", "demographics", 1]) + "#f-sex"
    assert link in page and f"Query #{query.pk}" in page


def test_a_coordinator_may_not_exclude_or_run(personas, subjects, study):
    save(personas, subjects["b"], {"age": 40}, "coordinator_b")
    with pytest.raises(PermissionDenied):
        checks.run_checks(actor=personas["coordinator_b"], study=study)
    checks.run_checks(actor=personas["monitor"], study=study)
    with pytest.raises(PermissionDenied):
        checks.exclude(actor=personas["coordinator_b"], discrepancy=Discrepancy.objects.get(), reason="no")


def test_a_rule_written_on_the_web_runs_with_the_checks(client, personas, subjects, study):
    save(personas, subjects["a"], {"sex": "1", "age": 17, "weight": 80})
    client.force_login(personas["data_manager"])
    url = reverse("monitoring:rules", args=["trial"])
    bad = client.post(
        url, {"name": "minor", "title": "Minor", "form_name": "demographics", "expression": "[age] <"}
    )
    assert "does not parse" in bad.content.decode()
    client.post(
        url,
        {
            "name": "minor",
            "title": "Under 18 at consent",
            "form_name": "demographics",
            "expression": "[age] < 18",
            "field": "age",
        },
    )
    checks.run_checks(actor=personas["data_manager"], study=study)
    assert found(study) == [("A-0001", "rule:minor", "age")]
    assert Discrepancy.objects.get().message == "Under 18 at consent"


def test_a_rule_that_comes_with_the_definitions_runs_with_the_checks(tmp_path, personas, subjects, study):
    shutil.copytree(BASIC, tmp_path / "basic")
    form = tmp_path / "basic" / "demographics.yaml"
    form.write_text(
        form.read_text()
        + "data_quality:\n  - name: heavy_child\n    title: Heavy for a child\n"
        + '    expression: "[age] < 12 and [weight] > 80"\n    field: weight\n'
    )
    load_definitions([tmp_path / "basic"], actor=SYSTEM)  # no records yet: reloaded in place
    save(personas, subjects["a"], {"sex": "1", "age": 10, "weight": 90})
    checks.run_checks(actor=personas["monitor"], study=study)
    assert found(study) == [("A-0001", "rule:heavy_child", "weight")]


def test_the_definitions_schema_refuses_a_rule_that_does_not_parse():
    spec = {
        "form": "f",
        "version": "1.0",
        "title": "F",
        "sections": [{"title": "S", "items": [{"element": "x@1"}]}],
        "data_quality": [{"name": "r", "title": "R", "expression": "[a] < and"}],
    }
    with pytest.raises(SchemaError, match="the rule's expression does not parse"):
        FormFile.model_validate(spec)


def test_the_checks_run_as_a_background_job_with_progress(
    personas, subjects, study, django_capture_on_commit_callbacks
):
    save(personas, subjects["b"], {"age": 40}, "coordinator_b")
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.start(actor=personas["monitor"], study=study)
    job = Job.objects.get(pk=job.pk)
    assert (job.status, job.done, job.total, job.result["found"]) == ("succeeded", 1, 1, 1)
    assert job.message == "Checked 1 records"


def test_the_page_starts_the_job(client, personas, subjects, django_capture_on_commit_callbacks):
    client.force_login(personas["monitor"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("monitoring:data_quality", args=["trial"]))
    job = Job.objects.get(kind="data_quality")
    assert response.url == reverse("jobs:detail", args=[job.pk])


def test_the_nightly_command_checks_every_study(personas, subjects, study, capsys):
    save(personas, subjects["b"], {"age": 40}, "coordinator_b")
    call_command("data_quality")
    assert "trial: 1 records checked, 1 findings" in capsys.readouterr().out
    assert found(study) == [("B-0001", "required", "sex")]


def test_the_dashboard_links_the_data_quality_page_for_roles_that_verify(client, personas, subjects):
    link = reverse("monitoring:data_quality", args=["trial"])
    client.force_login(personas["monitor"])
    assert link in client.get(reverse("web:dashboard", args=["trial"])).content.decode()
    client.force_login(personas["coordinator_a"])
    assert link not in client.get(reverse("web:dashboard", args=["trial"])).content.decode()


def test_a_finding_names_the_field_and_rule_never_the_stored_value(client, personas, subjects, study):
    bad_age(save(personas, subjects["a"], {"sex": "1", "age": 54}))
    checks.run_checks(actor=personas["monitor"], study=study)
    client.force_login(personas["monitor"])  # sees the study de-identified
    page = client.get(reverse("monitoring:data_quality", args=["trial"])).content.decode()
    assert "Age at enrolment: above the maximum 120" in page and "150" not in page
