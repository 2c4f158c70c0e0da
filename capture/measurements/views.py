"""Measurement report pages: the study's reports (of the subjects the user sees) and the queue of
reports waiting for a subject. Every view asks access.py first; dates go through the disclosure
policy (capture/studies/disclosure.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from capture.imaging.assigning import assign_queued
from capture.imaging.forms import AssignForm
from capture.studies import access
from capture.studies.disclosure import Disclosure

from . import queue as queues
from .models import MeasurementReport

IMPORT = "import_data"


@login_required
def report_list(request, slug):
    study = access.get_study(request.user, slug)
    disclosure = Disclosure.for_user(request.user, study)
    reports = (
        queues.visible_reports(request.user, study)
        .annotate(values=Count("measurements"), lesions=Count("measurements__lesion", distinct=True))
        .order_by("subject__subject_id", "report_date", "pk")
    )
    may_import = access.can(request.user, IMPORT, study)
    return render(
        request,
        "measurements/list.html",
        {
            "study": study,
            # The reader is DICOM person text (an SR's label, or a sheet's Reader cell, which may be a
            # name): shown only where disclosure shows DICOM text.
            "rows": [
                (r, disclosure.date(r.subject, r.real_date()), disclosure.dicom_text(r.observer))
                for r in reports
            ],
            "dates_shifted": disclosure.shifts_dates,
            "may_import": may_import,
            "queued": MeasurementReport.objects.filter(study=study, subject__isnull=True).count()
            if may_import
            else 0,
        },
    )


@login_required
def queue(request, slug):
    study = access.get_study(request.user, slug, IMPORT)
    subjects = list(access.subjects_visible_to(request.user, study).values_list("subject_id", flat=True))
    disclosure = Disclosure.for_user(request.user, study)
    rows = [
        (
            row,
            len(row.pending_values),
            AssignForm(subjects=subjects, prefix=f"r{row.pk}"),
            disclosure.dicom_text(row.observer),
        )
        for row in queues.queue(request.user, study)
    ]
    # A queued report has no subject, so no shift: its real date and source (a path that often
    # names the patient) are for the identified world only.
    return render(
        request,
        "measurements/queue.html",
        {"study": study, "rows": rows, "identified": disclosure.identified},
    )


@login_required
@require_POST
def assign(request, slug, pk):
    study = access.get_study(request.user, slug, IMPORT)
    row = get_object_or_404(MeasurementReport, study=study, pk=pk, subject__isnull=True)
    return assign_queued(
        request,
        study,
        row,
        prefix="r",
        noun="report",
        done="Report assigned to",
        assign=lambda actor, item, subject, reason: queues.assign(
            actor=actor, report=item, subject=subject, reason=reason
        ),
        back="measurements:queue",
    )
