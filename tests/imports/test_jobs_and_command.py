"""Imports as background jobs (all or nothing when the worker dies) and on the command line."""

import json

import pytest
from django.core.management import CommandError, call_command

from capture.audit.models import AuditEvent
from capture.imports import services
from capture.jobs import services as jobs
from capture.jobs.models import Job
from capture.records import bulk
from capture.records.models import FormRecord

from .conftest import HNSCC_CSV, IMPORT_FIXTURES, need_shared, write_xlsx
from .test_import import DEMO, HEAD


def _upload(user, study, path):
    with path.open("rb") as fh:
        return services.store_upload(actor=user, study=study, site=None, name=path.name, chunks=[fh.read()])


def test_a_worker_dying_midway_leaves_nothing_and_the_job_runs_again(
    trial, personas, tmp_path, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    dm = personas["data_manager"]
    path = write_xlsx(
        tmp_path / "ok.xlsx",
        [HEAD, ["A-0001", "F", 50, 70.5, "y", "", "+"], ["B-0001", "M", 60, None, None, None, None]],
    )
    upload = _upload(dm, trial, path)
    audit_before = AuditEvent.objects.count()

    def killed(**kwargs):  # the records are already inserted in the transaction when this runs
        assert FormRecord.objects.count() == 2
        raise RuntimeError("worker killed")

    monkeypatch.setattr(bulk, "append_audit_events", killed)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_job(
            actor=dm,
            study=trial,
            kind="import",
            title="Import",
            handler="capture.imports.jobs.run_import",
            params={"upload": str(upload.pk), "spec": DEMO, "commit": True},
        )
    job.refresh_from_db()
    assert job.status == Job.FAILED and "nothing was written" in job.error
    assert FormRecord.objects.count() == 0 and AuditEvent.objects.count() == audit_before

    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry_job(actor=dm, job=job)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.result["counts"]["new"] == 2 and job.done == job.total == 2
    assert FormRecord.objects.count() == 2


def test_a_refused_import_job_fails_with_the_first_problem(
    trial, personas, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    dm = personas["data_manager"]
    upload = _upload(
        dm, trial, write_xlsx(tmp_path / "bad.xlsx", [HEAD, ["A-0001", "F", "old", None, None, None, None]])
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_job(
            actor=dm,
            study=trial,
            kind="import",
            title="Import",
            handler="capture.imports.jobs.run_import",
            params={"upload": str(upload.pk), "spec": DEMO, "commit": True},
        )
    job.refresh_from_db()
    assert job.status == Job.FAILED
    assert "row 2, column C (Age): value 'old': Age at enrolment: 'old' is not a whole number" in job.error
    upload.refresh_from_db()
    assert upload.report["counts"]["problems"] == 1 and FormRecord.objects.count() == 0


def test_the_command_dry_runs_imports_and_writes_the_annotated_report(
    hnscc_study, personas, tmp_path, capsys
):
    need_shared(HNSCC_CSV)
    hnscc_study.enrol(215)
    mapping = tmp_path / "mapping.json"
    spec = json.loads((IMPORT_FIXTURES / "hnscc" / "mapping.json").read_text())
    mapping.write_text(json.dumps(spec))
    args = [HNSCC_CSV, "--study", "HNSCC", "--user", "data_manager", "--mapping-file", mapping]
    report = tmp_path / "report.xlsx"
    with pytest.raises(CommandError, match="Nothing was imported: 13 problem"):
        call_command("import_spreadsheet", *args, "--report", report)
    out = capsys.readouterr()
    assert (
        "error: sheet 'tcia_hnscc_clinical_mdacc', row 23, column AW (BW Start tx (kg)): value '70.25'"
        in out.out
    )
    assert "[##############################] 215/215" in out.err
    assert FormRecord.objects.count() == 0

    spec["columns"] = [c for c in spec["columns"] if c["item"] != "weight_start"]
    mapping.write_text(json.dumps(spec))
    call_command("import_spreadsheet", *args, "--dry-run", "--report", report)
    assert "215 row(s): would import 215 new" in capsys.readouterr().out and FormRecord.objects.count() == 0
    call_command("import_spreadsheet", *args, "--save-mapping", "MDACC clinical")
    assert "imported 215 new" in capsys.readouterr().out and FormRecord.objects.count() == 215
    call_command(
        "import_spreadsheet",
        HNSCC_CSV,
        "--study",
        "HNSCC",
        "--user",
        "data_manager",
        "--mapping",
        "MDACC clinical",
    )
    assert "0 new, 0 changed, 215 unchanged" in capsys.readouterr().out


def test_the_command_suggests_a_mapping_when_none_is_given(trial, personas, tmp_path, capsys):
    path = write_xlsx(
        tmp_path / "s.xlsx", [["Subject ID", "Sex", "Age at enrolment", "Notes"], ["A-0001", 1, 50, "x"]]
    )
    call_command("import_spreadsheet", path, "--study", "trial", "--user", "data_manager")
    out = capsys.readouterr()
    suggestion = json.loads(out.out)
    assert suggestion["subject_column"] == "Subject ID"
    assert [(c["column"], c["item"]) for c in suggestion["columns"]] == [
        ("Sex", "sex"),
        ("Age at enrolment", "age"),
    ]
    assert "No mapping given" in out.err and FormRecord.objects.count() == 0


def test_the_command_runs_with_the_users_permissions(trial, personas, tmp_path):
    path = write_xlsx(tmp_path / "s.xlsx", [HEAD, ["A-0001", "F", 50, None, None, None, None]])
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps(DEMO))
    with pytest.raises(CommandError, match="does not allow importing"):
        call_command(
            "import_spreadsheet",
            path,
            "--study",
            "trial",
            "--user",
            "statistician",
            "--mapping-file",
            mapping,
        )
