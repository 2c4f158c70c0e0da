"""The disk fills up while a worker writes an export (issue 8, faults).

The media folder is a small tmpfs filled to within a few kilobytes, so the kernel answers ENOSPC to
the worker's writes. Where mounting is refused (a container without the right), the worker runs
under RLIMIT_FSIZE instead, a kernel limit that answers EFBIG; the test says which it used.
The job must fail with a message that names the cause, leave no file behind, offer nothing, and
run again once there is room.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.imports import services as imports
from capture.imports.mapping import Mapping
from capture.jobs import services as jobs
from capture.jobs.models import Job

from .procs import requires_postgres, run_worker_batch
from .test_worker_killed import MAPPING, _spreadsheet

pytestmark = requires_postgres

ROOM = 8 * 1024  # bytes left free: less than one export file needs
FILE_LIMIT = 4 * 1024  # RLIMIT_FSIZE when no tmpfs can be mounted


def _limit_file_size() -> None:  # runs in the worker's child process, before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture
def full_media(media):
    """(media folder, filler file or None, preexec for the worker or None)."""
    mounted = subprocess.run(  # noqa: S603 - mount with fixed arguments
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0777", "tmpfs", str(media)],  # noqa: S607 - the system's mount
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        print(
            f"tmpfs refused ({mounted.stderr.decode().strip()}): using RLIMIT_FSIZE={FILE_LIMIT} on the worker"
        )
        yield media, None, _limit_file_size
        return
    try:
        filler = media / "filler"
        stat = os.statvfs(media)
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - ROOM))
        yield media, filler, None
    finally:
        subprocess.run(["umount", "-l", str(media)], capture_output=True, check=False)  # noqa: S603, S607 - fixed arguments


def _files_under(folder: Path, skip: Path | None) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p != skip)


def test_an_export_that_fills_the_disk_fails_clearly_leaves_nothing_and_runs_again(
    study, personas, many_subjects, full_media, client, tmp_path
):
    media, filler, preexec = full_media
    path = _spreadsheet(tmp_path / "records.xlsx", many_subjects)
    imports.run_import(
        actor=personas["data_manager"],
        study=study,
        path=path,
        mapping=Mapping.from_spec(MAPPING),
        commit=True,
    )
    stat = personas["statistician"]
    job = request_export(actor=stat, study=study, spec=ExportSpec(layout="tidy", formats=["csv", "xlsx"]))
    log = tmp_path / "worker.log"

    run_worker_batch(media, log, preexec_fn=preexec)
    job.refresh_from_db()
    assert job.status == Job.FAILED, f"{job.status}: {log.read_text()[-2000:]}"
    assert "disk" in job.error.lower() and "run" in job.error.lower(), (
        f"the message should name the full disk and say to run the job again, not: {job.error!r}"
    )
    assert _files_under(media, filler) == [], "a failed export must leave no file behind"
    client.force_login(stat)
    assert client.get(reverse("jobs:download", args=[job.pk])).status_code == 404

    if filler is not None:
        filler.unlink()  # an administrator frees space
    jobs.retry_job(actor=stat, job=job)
    run_worker_batch(media, log)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error
    response = client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"PK")
    response.close()
