"""Downloading a file field's file, and the PDF of forms. Each view asks capture.studies.access (or
files.services.get_for_user) first: 404 without access to the study or the subject's site; a file
answers 403 in the de-identified world; a PDF shows what the user may see (records/pdf.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from capture.records import pdf
from capture.records.models import FormRecord
from capture.records.slots import resolve_slot
from capture.studies import access

from . import services
from .redcap import download as file_response


@login_required
@require_GET
def download(request, slug: str, file_id):
    stored = services.get_for_user(request.user, file_id)
    if stored.study.slug != slug:
        raise Http404("No such file.")
    return file_response(stored)


def _pdf(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}"'
    return response


@login_required
@require_GET
def record_pdf(request, slug: str, subject_id: str, event: str, form: str, instance: int):
    """The entry page's "PDF" button: this form of this subject at this event, as the user may see
    it (every instance of a repeating form); `?blank=1` gives the form blank, for paper."""
    study_access = access.study_access(request.user, slug)
    subject = study_access.get_subject(subject_id)
    try:
        slot = resolve_slot(subject, event, form)
    except ValidationError:
        raise Http404("This form is not collected at this event for this subject.") from None
    study = study_access.study
    if request.GET.get("blank"):
        return _pdf(pdf.blank_pdf(study, [form], event_name=slot.event.name), f"{form}-blank.pdf")
    content = pdf.records_pdf(request.user, study, [subject], forms=[form], event_name=slot.event.name)
    return _pdf(content, f"{subject.subject_id}-{event}-{form}.pdf")


@login_required
@require_GET
def subject_pdf(request, slug: str, subject_id: str):
    """Every record of one subject, as the user may see them."""
    study_access = access.study_access(request.user, slug)
    subject = study_access.get_subject(subject_id)
    forms = list(FormRecord.objects.filter(subject=subject).values_list("form_name", flat=True).distinct())
    content = pdf.records_pdf(request.user, study_access.study, [subject], forms=forms)
    return _pdf(content, f"{subject.subject_id}.pdf")
