"""The target designation page of a subject (issue 17). Each view asks access.py first (404 for a
study or subject the user does not see), then calls designation.py; reading roles see the page,
only access.may_designate_lesions may save it (403 otherwise)."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from capture.studies import access
from capture.studies.disclosure import Disclosure

from . import compute, designation
from .models import Lesion, LesionStatus, MeasurementReport


def _followups(data: compute.SubjectData, disclosure: Disclosure) -> list[dict]:
    """Each timepoint after baseline with the status of every non-target and new lesion: the
    reader's, else the one its measurements give (compute.non_target_status)."""
    index = data.baseline_index()
    assessed = [lesion for lesion in data.lesions if lesion.role in (Lesion.NON_TARGET, Lesion.NEW)]
    if index is None or not assessed:
        return []
    subject = data.subject
    return [
        {
            "day": point.day,
            "date": disclosure.date(subject, subject.enrollment_date + dt.timedelta(days=point.day)),
            "event": point.event,
            "report": point.reports[0],
            "lesions": [
                (
                    lesion,
                    str(compute.non_target_status(lesion, point) or "not_evaluated"),
                    lesion.pk in point.statuses,
                )
                for lesion in assessed
            ],
        }
        for point in data.timepoints[index + 1 :]
    ]


def _page(request, study, subject, error: str = "", status: int = 200):
    data = compute.read_subject(subject)
    baseline = designation.baseline_of(data)
    disclosure = Disclosure.for_user(request.user, study)
    point = baseline.timepoint
    date = subject.enrollment_date + dt.timedelta(days=point.day) if point else None
    return render(
        request,
        "measurements/targets.html",
        {
            "study": study,
            "subject": subject,
            "baseline": baseline,
            "baseline_day": point.day if point else None,
            "baseline_date": disclosure.date(subject, date) if date else None,
            "dates_shifted": disclosure.shifts_dates,
            "followups": _followups(data, disclosure),
            "statuses": LesionStatus.STATUSES,
            "choices": [(role, label) for role, label in Lesion.ROLES if role in designation.CHOICES],
            "may_designate": access.may_designate_lesions(request.user, subject),
            "limits": designation,
            "error": error,
        },
        status=status,
    )


@login_required
@require_GET
def targets(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    return _page(request, study, subject)


@login_required
@require_POST
def designate(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    if not access.may_designate_lesions(request.user, subject):
        raise PermissionDenied(f"Your role in {study.name} does not allow designating lesions.")
    try:
        roles = {int(key[5:]): value for key, value in request.POST.items() if key.startswith("role-")}
    except ValueError:
        return _page(
            request, study, subject, "The form names a lesion that is not there; reload the page.", 400
        )
    try:
        changed = designation.designate(actor=request.user, subject=subject, roles=roles)
    except ValidationError as exc:
        return _page(request, study, subject, " ".join(exc.messages), 400)
    messages.success(request, f"Designation saved ({len(changed)} lesion(s) changed); responses recomputed.")
    return redirect("response:targets", slug=slug, subject_id=subject.subject_id)


@login_required
@require_POST
def assess(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    if not access.may_designate_lesions(request.user, subject):
        raise PermissionDenied(f"Your role in {study.name} does not allow assessing lesions.")
    report = MeasurementReport.objects.filter(subject=subject, pk=request.POST.get("report") or 0).first()
    if report is None:
        return _page(
            request, study, subject, "Choose a follow-up report of this subject; reload the page.", 400
        )
    try:
        statuses = {int(key[7:]): value for key, value in request.POST.items() if key.startswith("status-")}
        changed = designation.assess_lesions(
            actor=request.user, subject=subject, report=report, statuses=statuses
        )
    except (ValueError, ValidationError) as exc:
        text = (
            " ".join(exc.messages)
            if isinstance(exc, ValidationError)
            else "A lesion of the form is not there."
        )
        return _page(request, study, subject, text, 400)
    messages.success(request, f"Lesion statuses saved ({changed} changed); responses recomputed.")
    return redirect("response:targets", slug=slug, subject_id=subject.subject_id)
