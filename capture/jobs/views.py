"""Job pages: progress (polled by jobs/progress.js), retry, and the download of the result."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from capture import storage

from . import services


@login_required
def job_detail(request, job_id):
    services.recover_stale_jobs()
    job = services.get_job(request.user, job_id)
    return render(request, "jobs/job.html", {"job": job, "study": job.study})


@login_required
def job_status(request, job_id):
    services.recover_stale_jobs()
    job = services.get_job(request.user, job_id)
    return JsonResponse(
        {
            "status": job.status,
            "label": job.get_status_display(),
            "done": job.done,
            "total": job.total,
            "percent": job.percent,
            "message": job.message,
            "error": job.error,
            "finished": job.finished,
            "has_file": bool(job.result_file and job.status == job.SUCCEEDED),
        }
    )


@login_required
@require_POST
def job_retry(request, job_id):
    job = services.get_job(request.user, job_id)
    try:
        services.retry_job(actor=request.user, job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("jobs:detail", job_id=job.pk)


@login_required
def job_download(request, job_id):
    job = services.get_job(request.user, job_id)
    # Only a finished job's file is offered: a half-written one never is.
    if job.status != job.SUCCEEDED or not job.result_file:
        raise Http404("This job has no file to download.")
    # Streamed from the results storage, or a short-lived signed link on object storage.
    return storage.download_response(storage.RESULTS, job.result_file, job.result_file.rsplit("/", 1)[-1])
