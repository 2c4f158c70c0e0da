"""A worker process killed with SIGKILL in the middle of an import or an export (issue 8, faults).

The test holds a row lock the job needs further on, so the real `manage.py db_worker` process stops at
a known point of its work — the import with its records inserted in its open transaction, the
export with its files half written — and is killed there. Afterwards the database is as it was, no
file is offered, the job is recovered as failed, and a new worker runs it again to completion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

import psycopg
from django.urls import reverse
from django.utils import timezone

from capture.audit.models import AuditChain, AuditEvent
from capture.audit.services import chain_key, verify_chain
from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.imports import services as imports
from capture.imports.mapping import Mapping
from capture.jobs import services as jobs
from capture.jobs.models import Job
from capture.records.models import FormRecord
from tests.imports.conftest import write_xlsx

from .conftest import SUBJECTS
from .procs import (
    backend_alive,
    backend_waiting_for_a_lock,
    conninfo,
    holds_write_lock,
    kill,
    requires_postgres,
    run_worker_batch,
    start_worker,
    wait_for,
)

pytestmark = requires_postgres

HEAD = ["Patient", "Sex", "Age", "Weight"]
MAPPING = {
    "subject_column": "Patient",
    "event": "baseline",
    "columns": [
        {"column": "Sex", "form": "demographics", "item": "sex", "values": {"F": "1", "M": "2"}},
        {"column": "Age", "form": "demographics", "item": "age"},
        {"column": "Weight", "form": "demographics", "item": "weight"},
    ],
}


def _spreadsheet(path, subject_ids):
    rows = [[sid, "FM"[i % 2], 30 + i % 50, 60.5 + i % 7] for i, sid in enumerate(subject_ids)]
    return write_xlsx(path, [HEAD, *rows])


def _recover_as_a_later_clock_would(job: Job) -> None:
    """The heartbeat rule: fresh now, stale once STALE_AFTER has passed without progress."""
    assert jobs.recover_stale_jobs() == 0, "a job whose heartbeat is fresh must not be recovered yet"
    later = timezone.now() + jobs.STALE_AFTER + dt.timedelta(seconds=1)
    assert jobs.recover_stale_jobs(now=later) == 1
    job.refresh_from_db()
    assert job.status == Job.FAILED and "killed or crashed" in job.error, job.error


def _kill_when_blocked(worker, observer, holder, job: Job) -> int:
    """Wait until the worker's backend waits for the lock `holder` holds, SIGKILL the worker, release
    the lock, and wait until PostgreSQL has ended the dead worker's session (rolling it back)."""
    pid = wait_for(
        lambda: backend_waiting_for_a_lock(observer), "the worker to reach the lock", process=worker
    )
    kill(worker)
    holder.rollback()
    wait_for(lambda: not backend_alive(observer, pid), "PostgreSQL to end the killed worker's session")
    job.refresh_from_db()
    return pid


def test_an_import_killed_in_its_transaction_writes_nothing_and_runs_again(
    study, personas, many_subjects, media, observer, tmp_path
):
    dm = personas["data_manager"]
    path = _spreadsheet(tmp_path / "big.xlsx", many_subjects)
    with path.open("rb") as fh:
        upload = imports.store_upload(actor=dm, study=study, site=None, name=path.name, chunks=[fh.read()])
    chain = chain_key(study)
    assert AuditChain.objects.filter(key=chain).exists()
    audit_before = AuditEvent.objects.filter(chain=chain).count()
    log = tmp_path / "worker.log"

    with psycopg.connect(conninfo()) as holder:
        # The worker inserts every record, then waits here for the study's audit chain: mid-transaction.
        holder.execute(f"SELECT 1 FROM {AuditChain._meta.db_table} WHERE key = %s FOR UPDATE", (chain,))  # noqa: S608 - a model's table name
        job = jobs.start_job(
            actor=dm,
            study=study,
            kind="import",
            title="Import big.xlsx",
            handler="capture.imports.jobs.run_import",
            params={"upload": str(upload.pk), "spec": MAPPING, "commit": True},
        )
        worker = start_worker(media, log)
        try:
            pid = wait_for(
                lambda: backend_waiting_for_a_lock(observer),
                "the worker to reach the audit chain",
                process=worker,
            )
            assert holds_write_lock(observer, pid, FormRecord._meta.db_table), (
                "the worker should have inserted the records in its open transaction before the audit step"
            )
            _kill_when_blocked(worker, observer, holder, job)
        finally:
            if worker.poll() is None:
                worker.kill()

    assert job.status == Job.RUNNING and job.message.startswith(f"Writing {SUBJECTS} record"), (
        f"{job.status} {job.message} {job.error}\n{log.read_text()[-3000:]}"
    )
    assert FormRecord.objects.filter(subject__study=study).count() == 0, "a killed import must write nothing"
    assert AuditEvent.objects.filter(chain=chain).count() == audit_before
    _recover_as_a_later_clock_would(job)

    jobs.retry_job(actor=dm, job=job)
    run_worker_batch(media, log)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.attempts == 2, job.error
    assert job.result["counts"]["new"] == SUBJECTS
    assert FormRecord.objects.filter(subject__study=study).count() == SUBJECTS
    events = AuditEvent.objects.filter(chain=chain)
    assert events.filter(action="record.create").count() == SUBJECTS
    assert events.filter(action="import.commit").count() == 1
    assert verify_chain(chain) == []


def test_an_export_killed_midway_offers_no_file_and_runs_again(
    study, personas, many_subjects, media, observer, client, tmp_path
):
    path = _spreadsheet(tmp_path / "records.xlsx", many_subjects)
    imports.run_import(
        actor=personas["data_manager"],
        study=study,
        path=path,
        mapping=Mapping.from_spec(MAPPING),
        commit=True,
    )
    stat = personas["statistician"]
    chain = chain_key(study)
    log = tmp_path / "worker.log"
    job = request_export(actor=stat, study=study, spec=ExportSpec(layout="tidy", formats=["csv", "xlsx"]))

    with psycopg.connect(conninfo()) as holder:
        # Whatever the worker reaches first blocks it: its next progress report (files half written)
        # or, at the latest, the audit event it writes after the zip is complete and before the job
        # offers it.
        holder.execute(f"SELECT 1 FROM {AuditChain._meta.db_table} WHERE key = %s FOR UPDATE", (chain,))  # noqa: S608 - a model's table name
        worker = start_worker(media, log)
        try:
            wait_for(
                lambda: Job.objects.filter(pk=job.pk, status=Job.RUNNING).exists(),
                "the worker to take the export",
                process=worker,
            )
            holder.execute(f"SELECT 1 FROM {Job._meta.db_table} WHERE id = %s FOR UPDATE", (job.pk,))  # noqa: S608 - a model's table name
            _kill_when_blocked(worker, observer, holder, job)
        finally:
            if worker.poll() is None:
                worker.kill()

    assert job.status == Job.RUNNING and job.result_file == "", f"{job.error}\n{log.read_text()[-3000:]}"
    client.force_login(stat)
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404
    assert client.get(reverse("jobs:status", args=[job.pk])).json()["has_file"] is False
    assert not AuditEvent.objects.filter(chain=chain, action="export.create").exists()
    _recover_as_a_later_clock_would(job)
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404

    jobs.retry_job(actor=stat, job=job)
    run_worker_batch(media, log)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.attempts == 2, job.error
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    audited = AuditEvent.objects.get(chain=chain, action="export.create").after["bundle"]
    assert hashlib.sha256(body).hexdigest() == audited["sha256"], "the download is not the audited file"
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(bundle.read(entry["name"])).hexdigest() == entry["sha256"], entry["name"]
    assert manifest["subjects"] == SUBJECTS
