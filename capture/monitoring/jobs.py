"""The data quality run as a background job (capture.jobs): progress as it reads the records."""

from __future__ import annotations

from django.urls import reverse

from capture.jobs.services import start_job

from . import checks

HANDLER = "capture.monitoring.jobs.run_data_quality"


def start(*, actor, study):
    """Queue a run of every rule over the study; the job page shows its progress."""
    return start_job(
        actor=actor,
        study=study,
        kind="data_quality",
        title=f"Data quality checks of {study.name}",
        handler=HANDLER,
    )


def run_data_quality(job, progress) -> dict:
    def report(done: int, total: int) -> None:
        progress(done, total, f"Checked {done} of {total} records")

    run = checks.run_checks(actor=job.created_by, study=job.study, job=job, progress=report)
    progress(run.records, run.records, f"Checked {run.records} records")
    return {
        "records": run.records,
        "found": run.found,
        "link": reverse("monitoring:data_quality", args=[job.study.slug]),
    }
