"""Who may export what, by every path: the page, the job, the service and the command."""

from __future__ import annotations

import zipfile
from io import BytesIO, StringIO

import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from guardian.shortcuts import assign_perm

from capture.accounts.system import SYSTEM
from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.jobs.models import Job

# persona -> status of GET on the export builder of study "trial"
BUILDER = [
    ("admin", 200),
    ("pi", 200),
    ("data_manager", 200),
    ("statistician", 200),
    ("coordinator_a", 403),
    ("coordinator_b", 403),
    ("monitor", 403),
    ("outsider", 404),
]


@pytest.mark.parametrize(("persona", "status"), BUILDER)
def test_the_export_builder_answers_by_role(client, personas, study, persona, status):
    client.force_login(personas[persona])
    assert client.get(reverse("exports:builder", args=["trial"])).status_code == status


def test_the_builder_needs_a_login(client, study):
    response = client.get(reverse("exports:builder", args=["trial"]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_builder_offers_the_identified_export_only_to_roles_with_the_right(client, personas, study):
    client.force_login(personas["statistician"])
    page = client.get(reverse("exports:builder", args=["trial"])).content.decode()
    assert 'name="identified"' not in page and 'value="none"' not in page
    client.force_login(personas["pi"])
    page = client.get(reverse("exports:builder", args=["trial"])).content.decode()
    assert 'name="identified"' in page


def _post(client, **extra):
    data = {"layout": "wide", "formats": ["csv"], "checkboxes": "split", "date_mode": "shift", **extra}
    return client.post(reverse("exports:builder", args=["trial"]), data)


def test_a_statistician_forging_an_identified_request_is_refused(
    client, personas, records, django_capture_on_commit_callbacks
):
    client.force_login(personas["statistician"])
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, identified="on", reason="x", date_mode="none")
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_a_statistician_cannot_get_identified_data_through_the_service_or_a_job(personas, study, records):
    spec = ExportSpec(identified=True, reason="x", date_mode="none")
    with pytest.raises(PermissionDenied):
        request_export(actor=personas["statistician"], study=study, spec=spec)
    # A job row whose params were tampered with is checked again when it runs.
    from capture.exports.jobs import run_export
    from capture.jobs.services import JobError  # noqa: F401 - the job layer turns PermissionDenied into failure

    job = Job.objects.create(
        study=study,
        created_by=personas["statistician"],
        kind="export",
        title="forged",
        handler="capture.exports.jobs.run_export",
        params={"spec": spec.to_dict()},
    )
    with pytest.raises(PermissionDenied):
        run_export(job, lambda *a, **k: None)
    job.refresh_from_db()
    assert job.result_file == ""


def test_a_statistician_cannot_get_identified_data_through_the_command(personas, study, records, tmp_path):
    with pytest.raises(CommandError, match="de-identified exports only"):
        call_command(
            "export_dataset",
            study="trial",
            user="statistician",
            identified=True,
            reason="x",
            dates="none",
            output=str(tmp_path),
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert not list(tmp_path.iterdir())


def test_the_command_refuses_a_study_the_user_cannot_see(personas, study, tmp_path):
    with pytest.raises(CommandError, match="no study"):
        call_command(
            "export_dataset",
            study="trial",
            user="outsider",
            output=str(tmp_path),
            stdout=StringIO(),
            stderr=StringIO(),
        )


def test_the_command_writes_a_zip(personas, study, records, tmp_path):
    out = StringIO()
    call_command(
        "export_dataset",
        study="trial",
        user="statistician",
        format="csv,dta",
        layout="long",
        output=str(tmp_path),
        stdout=out,
        stderr=StringIO(),
    )
    path = out.getvalue().splitlines()[0]
    with zipfile.ZipFile(path) as bundle:
        assert {"dataset.csv", "dataset.dta", "codebook.csv", "manifest.json"} <= set(bundle.namelist())


def test_an_exporter_restricted_to_a_site_gets_only_its_subjects(
    personas, study, records, run_export, make_user
):
    from capture.studies.services import grant_role

    user = make_user("site_a_exporter")
    grant_role(actor=SYSTEM, study=study, user=user, role="coordinator", sites=[study.sites.get(code="A")])
    assign_perm("studies.export_deidentified", user, study)
    _, manifest, folder = run_export(user, study, formats=["csv", "odm"])
    frame = pd.read_csv(folder / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert set(frame["site"]) == {"A"}
    assert "B-0001" not in (folder / "odm.xml").read_text()
    assert manifest["sites"] == ["A"]
    with pytest.raises(ValidationError, match="not among your sites"):
        run_export(user, study, sites=["B"])
    with pytest.raises(ValidationError, match="not among the subjects"):
        run_export(user, study, subjects=["B-0001"])


def test_an_export_from_another_study_is_refused(personas, other_study, run_export):
    with pytest.raises(PermissionDenied):
        run_export(personas["statistician"], other_study)


def test_a_statistician_builds_an_export_and_downloads_it(
    client, personas, records, django_capture_on_commit_callbacks
):
    client.force_login(personas["statistician"])
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, formats=["csv", "sav"], layout="tidy")
    assert response.status_code == 302
    job = Job.objects.get(kind="export")
    assert response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.status == Job.SUCCEEDED, job.error
    assert job.total > 0 and job.done == job.total  # progress was reported as the tables were written
    assert job.result["subjects"] == 3
    download = client.get(reverse("jobs:download", args=[job.pk]))
    assert download.status_code == 200
    with zipfile.ZipFile(BytesIO(b"".join(download.streaming_content))) as bundle:
        assert {"subjects.csv", "demographics.sav", "codebook.csv", "manifest.json"} <= set(bundle.namelist())
    # The export is the statistician's: another exporter cannot fetch it.
    client.force_login(personas["data_manager"])
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404
    page = client.get(reverse("exports:builder", args=["trial"]))
    assert job.title not in page.content.decode()


def test_a_bad_selection_is_reported_on_the_page(client, personas, records):
    client.force_login(personas["statistician"])
    response = _post(client, subjects="A-0001 Z-9999")
    assert response.status_code == 200
    assert "Z-9999 are not among the subjects you may export" in response.content.decode()
    assert not Job.objects.exists()
