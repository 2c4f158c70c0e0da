"""Imaging pages: the study's imaging index, the queue of unassigned studies, zip upload, linking
a subject's images (identifier, DICOMweb), and the subject timeline (picture and JSON).
Every view asks access.py first."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from capture import storage
from capture.jobs import services as jobs
from capture.studies import access
from capture.studies.disclosure import Disclosure

from . import dicomweb, services, svg
from . import ingest as ingest_limits
from . import timeline as timelines
from .assigning import assign_queued
from .forms import AssignForm, DicomwebForm, IdentifierForm, UploadForm
from .jobs import UPLOAD_DIR
from .models import ImagingStudy, QuarantinedInstance

IMPORT = "import_data"


@login_required
def imaging_list(request, slug):
    study = access.get_study(request.user, slug)
    disclosure = Disclosure.for_user(request.user, study)
    rows = services.visible_studies(request.user, study).order_by("subject__subject_id", "study_date")
    may_import = access.can(request.user, IMPORT, study)
    return render(
        request,
        "imaging/list.html",
        {
            "study": study,
            # Every value shown goes through the disclosure policy: free text, dates.
            "rows": [
                (s, disclosure.dicom_text(s.description), disclosure.date(s.subject, s.real_date()))
                for s in rows
            ],
            "dates_shifted": disclosure.shifts_dates,
            "may_import": may_import,
            "queued": ImagingStudy.objects.unassigned().filter(study=study).count() if may_import else 0,
            "quarantined": (
                QuarantinedInstance.objects.filter(study=study, status=QuarantinedInstance.PENDING).count()
                if may_import
                else 0
            ),
        },
    )


@login_required
def queue(request, slug):
    study = access.get_study(request.user, slug, IMPORT)
    subjects = list(access.subjects_visible_to(request.user, study).values_list("subject_id", flat=True))
    disclosure = Disclosure.for_user(request.user, study)
    rows = services.queue(request.user, study)
    return render(
        request,
        "imaging/queue.html",
        {
            "study": study,
            "rows": [
                (
                    row,
                    disclosure.dicom_text(row.description),
                    AssignForm(subjects=subjects, prefix=f"s{row.pk}"),
                )
                for row in rows
            ],
            # A queued study has no subject, so no shift: its real date (and its source path, which
            # often names the patient) are for the identified world only.
            "identified": disclosure.identified,
        },
    )


@login_required
@require_POST
def assign(request, slug, pk):
    study = access.get_study(request.user, slug, IMPORT)
    row = get_object_or_404(ImagingStudy, study=study, pk=pk)
    return assign_queued(
        request,
        study,
        row,
        prefix="s",
        noun="study",
        done="Assigned to",
        assign=lambda actor, item, subject, reason: services.assign_study(
            actor=actor, imaging_study=item, subject=subject, reason=reason
        ),
        back="imaging:queue",
    )


@login_required
def quarantine(request, slug):
    """Images held back from de-identified copies until someone has looked at their pixels."""
    study = access.get_study(request.user, slug, IMPORT)
    disclosure = Disclosure.for_user(request.user, study)
    rows = [
        {
            "row": row,
            "found": disclosure.timestamp(row.subject, row.created_at),
            "decided": disclosure.timestamp(row.subject, row.decided_at),
            # Source paths often carry patient names: the identified world only.
            "source": row.source_file if disclosure.identified else "",
        }
        for row in services.quarantine(request.user, study)
    ]
    return render(
        request,
        "imaging/quarantine.html",
        {
            "study": study,
            "pending": [r for r in rows if r["row"].status == QuarantinedInstance.PENDING],
            "decided": [r for r in rows if r["row"].status != QuarantinedInstance.PENDING],
        },
    )


@login_required
@require_POST
def quarantine_decide(request, slug, pk):
    study = access.get_study(request.user, slug, IMPORT)
    row = get_object_or_404(QuarantinedInstance.objects.select_related("subject"), study=study, pk=pk)
    access.get_subject(request.user, study, row.subject.subject_id)  # another site's image is 404
    decision = request.POST.get("decision")
    if decision not in ("release", "reject"):
        messages.error(request, "Choose Release or Reject.")
        return redirect("imaging:quarantine", slug=study.slug)
    try:
        services.decide_quarantine(
            actor=request.user, item=row, release=decision == "release", reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        done = (
            "released: the next de-identification run writes it"
            if decision == "release"
            else "rejected: it is never shared"
        )
        messages.success(request, f"Image of {row.subject.subject_id} {done}.")
    return redirect("imaging:quarantine", slug=study.slug)


@login_required
def ingest(request, slug):
    study = access.get_study(request.user, slug, IMPORT)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid() and not _too_large(form):
        upload = form.cleaned_data["archive"]
        try:
            relative = storage.save(storage.UPLOADS, f"{UPLOAD_DIR}/{uuid.uuid4().hex}.zip", upload)
        except storage.StorageUnavailableError as exc:
            form.add_error("archive", exc.messages[0])
            return render(request, "imaging/ingest.html", {"study": study, "form": form})
        with transaction.atomic():
            job = jobs.start_job(
                actor=request.user,
                study=study,
                kind="imaging_ingest",
                title=f"DICOM ingest of {upload.name}",
                handler="capture.imaging.jobs.run_ingest",
                params={"upload": relative, "name": Path(upload.name).name}
                | _publication(request.user, study),
            )
        return redirect("imaging:ingest_job", slug=study.slug, job_id=job.pk)
    return render(request, "imaging/ingest.html", {"study": study, "form": form})


def _publication(user, study) -> dict:
    """With a research archive configured (CAPTURE_RESEARCH_ARCHIVE), an ingest by a user who may
    share de-identified data also sends de-identified copies there."""
    archive = settings.CAPTURE.get("RESEARCH_ARCHIVE")
    if archive and access.can(user, "export_deidentified", study):
        return {"publish": archive}
    return {}


def _too_large(form) -> bool:
    """A zip larger than what an ingest may unpack cannot pass: refuse it before it is copied."""
    limit = ingest_limits.MAX_UNPACKED_BYTES
    if form.cleaned_data["archive"].size > limit:
        form.add_error(
            "archive",
            f"The zip is larger than {limit / 1024**3:.0f} GB, the most an ingest unpacks; split it into "
            "smaller zips, or ask an administrator to run `manage.py ingest_dicom` on the folder.",
        )
        return True
    return False


@login_required
def ingest_job(request, slug, job_id):
    # A job the user may not see is 404 before any permission answer, as on the job pages.
    study = access.get_study(request.user, slug)
    job = jobs.get_job(request.user, job_id)
    if job.study_id != study.pk or job.kind != "imaging_ingest":
        raise Http404("No such ingest.")
    access.get_study(request.user, slug, IMPORT)
    return render(request, "imaging/ingest_job.html", {"study": study, "job": job, "result": job.result})


@login_required
def subject_link(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    # A subject at another site is 404 (it does not exist for the user) before any 403.
    subject = access.get_subject(request.user, study, subject_id, IMPORT)
    servers = list(dicomweb.servers())
    id_form = IdentifierForm(prefix="id")
    web_form = DicomwebForm(servers=servers, prefix="web")
    if request.method == "POST":
        try:
            if "id-value" in request.POST:
                id_form = IdentifierForm(request.POST, prefix="id")
                if id_form.is_valid():
                    _, linked = services.add_identifier(
                        actor=request.user, subject=subject, **id_form.cleaned_data
                    )
                    messages.success(request, f"Identifier registered; {linked} queued studies linked.")
                    return redirect("imaging:subject_link", slug=study.slug, subject_id=subject.subject_id)
            else:
                web_form = DicomwebForm(request.POST, servers=servers, prefix="web")
                if web_form.is_valid():
                    result = dicomweb.link(
                        actor=request.user,
                        study=study,
                        server=web_form.cleaned_data["server"],
                        subject=subject,
                        patient_id=web_form.cleaned_data["patient_id"],
                    )
                    messages.success(
                        request,
                        f"{result['studies_found']} studies found on {result['server']}; "
                        f"{result['studies_new']} new linked.",
                    )
                    return redirect("imaging:timeline", slug=study.slug, subject_id=subject.subject_id)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return render(
        request,
        "imaging/subject_link.html",
        {
            "study": study,
            "subject": subject,
            "id_form": id_form,
            "web_form": web_form,
            "servers": servers,
            "identifiers": subject.source_identifiers.all(),
        },
    )


@login_required
def timeline(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    data = timelines.build(request.user, subject)
    return render(
        request,
        "imaging/timeline.html",
        {
            "study": study,
            "subject": subject,
            "timeline": data,
            # svg.render escapes every text it writes.
            "picture": mark_safe(svg.render(data)),  # noqa: S308 - built from escaped parts in svg.py
            "may_import": access.can(request.user, IMPORT, study),
        },
    )


@login_required
def timeline_json(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    return JsonResponse(timelines.build(request.user, subject).as_dict())
