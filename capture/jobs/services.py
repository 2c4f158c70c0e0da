"""Starting, running, watching and retrying background jobs.

A handler is a plain function `handler(job, progress) -> dict` in an app's module
(e.g. `capture.imports.jobs.run_import`). It does its database writes in one
transaction, so a worker killed midway leaves nothing half-written; it calls
`progress(done, total, message)` as it goes (outside that transaction, or the
progress is not visible until the end). What it returns becomes `job.result`;
an exception marks the job failed with a message for the user.

A job whose worker died stays "running" with a stale heartbeat; `recover_stale_jobs`
(called by the job pages and `manage.py jobs --recover`) marks it failed, and
`retry_job` runs it again.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import traceback

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from capture.studies import access

from .models import Job

log = logging.getLogger(__name__)

# A running job that has not reported for this long is taken as dead.
STALE_AFTER = dt.timedelta(minutes=5)

# A full disk, a quota or a file size limit is for the administrator to fix, not a bug: say so.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
NO_ROOM_MESSAGE = (
    "The server ran out of disk space while writing this job's file; nothing was kept. "
    "Ask the administrator to free space, then run the job again."
)


class JobError(Exception):
    """A failure whose message is meant for the user (a bad file, a refused write)."""


def start_job(*, actor, study, kind: str, title: str, handler: str, params: dict | None = None) -> Job:
    if not handler.startswith(tuple(settings.CAPTURE["JOB_HANDLER_PREFIXES"])):
        raise ValueError(f"Job handler {handler!r} is not under an allowed package.")
    job = Job.objects.create(
        study=study, created_by=actor, kind=kind, title=title, handler=handler, params=params or {}
    )
    _enqueue(job)
    return job


def _enqueue(job: Job) -> None:
    job_id = str(job.pk)
    # After commit: the worker must find the job row (and whatever the caller saved with it).
    transaction.on_commit(lambda: run_job_task.enqueue(job_id))


@task()
def run_job_task(job_id: str) -> None:
    run_job(job_id)


def run_job(job_id: str) -> Job:
    job = Job.objects.get(pk=job_id)
    if job.status not in (Job.QUEUED,):
        return job  # already taken by another worker, or finished
    now = timezone.now()
    claimed = Job.objects.filter(pk=job.pk, status=Job.QUEUED).update(
        status=Job.RUNNING, started_at=now, heartbeat_at=now, attempts=job.attempts + 1, error="", message=""
    )
    if not claimed:
        return job
    job.refresh_from_db()

    def progress(done: int, total: int | None = None, message: str = "") -> None:
        fields = {"done": done, "heartbeat_at": timezone.now()}
        if total is not None:
            fields["total"] = total
        if message:
            fields["message"] = message[:500]
        Job.objects.filter(pk=job.pk).update(**fields)

    try:
        handler = import_string(job.handler)
        result = handler(job, progress) or {}
    except (JobError, ValidationError, PermissionDenied) as exc:
        _finish(job, Job.FAILED, error=_user_message(exc))
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            _crashed(job)
        else:
            log.warning("Job %s (%s) ran out of disk space: %s", job.pk, job.handler, exc)
            _finish(job, Job.FAILED, error=NO_ROOM_MESSAGE)
    except Exception:  # noqa: BLE001 - any crash must mark the job failed, not leave it running
        _crashed(job)
    else:
        _finish(job, Job.SUCCEEDED, result=result)
    job.refresh_from_db()
    return job


def _crashed(job: Job) -> None:
    """Called in an `except` block: log the traceback and fail the job with a message for the user."""
    log.exception("Job %s (%s) crashed", job.pk, job.handler)
    _finish(
        job,
        Job.FAILED,
        error="An internal error stopped this job; nothing was written. "
        "It has been logged. Run it again, or report it if it repeats.",
        trace=traceback.format_exc(),
    )


def _user_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def _finish(job: Job, status: str, *, error: str = "", result: dict | None = None, trace: str = "") -> None:
    fields = {"status": status, "finished_at": timezone.now(), "error": error}
    if result is not None:
        fields["result"] = result
    if trace:
        log.debug(trace)
    Job.objects.filter(pk=job.pk).update(**fields)


def recover_stale_jobs(now: dt.datetime | None = None) -> int:
    """Mark jobs whose worker stopped reporting as failed. Returns how many."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    return Job.objects.filter(status=Job.RUNNING, heartbeat_at__lt=cutoff).update(
        status=Job.FAILED,
        finished_at=timezone.now(),
        error="The worker stopped before finishing (it was killed or crashed). Nothing it was writing was "
        "kept. Run the job again.",
    )


def retry_job(*, actor, job: Job) -> Job:
    if job.status != Job.FAILED:
        raise ValidationError("Only a failed job can be run again.")
    if not may_see_job(actor, job):
        raise PermissionDenied("You may not run this job.")
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            status=Job.QUEUED, done=0, message="", error="", finished_at=None
        )
        _enqueue(job)
    job.refresh_from_db()
    return job


def may_see_job(user, job: Job) -> bool:
    """A job (and its file) belongs to who started it; a study administrator sees all."""
    if not access.can(user, access.VIEW, job.study):
        return False
    return job.created_by_id == user.pk or access.can(user, "manage_study", job.study)


def get_job(user, job_id) -> Job:
    from django.http import Http404

    job = Job.objects.select_related("study").filter(pk=job_id).first()
    if job is None or not may_see_job(user, job):
        raise Http404("No such job.")
    return job
