"""The export builder page. Access first (capture.studies.access), then the service."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from capture.jobs.models import Job
from capture.studies import access

from . import services
from .forms import ExportForm


@login_required
@require_http_methods(["GET", "POST"])
def builder(request, slug):
    study = access.get_study(request.user, slug, "export_deidentified")
    if (
        request.method == "POST"
        and request.POST.get("identified")
        and not access.can(request.user, "export_identified", study)
    ):
        # The field is not even shown to this role; a forged one is refused, not ignored.
        raise PermissionDenied(f"Your role in {study.name} allows de-identified exports only.")
    form = ExportForm(request.POST or None, study=study, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.request_export(actor=request.user, study=study, spec=form.spec())
        except ValidationError as exc:
            # Errors about one choice (the cohort filter) show at that field, the others on top.
            form.add_error(None, exc if _on_fields(exc, form) else ValidationError(exc.messages))
        else:
            return redirect("jobs:detail", job_id=job.pk)
    jobs = Job.objects.filter(study=study, kind="export", created_by=request.user).order_by("-created_at")[
        :10
    ]
    return render(request, "exports/builder.html", {"study": study, "form": form, "jobs": jobs})


def _on_fields(exc: ValidationError, form) -> bool:
    return hasattr(exc, "error_dict") and set(exc.error_dict) <= set(form.fields)
