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
from .models import Lesion


def _page(request, study, subject, error: str = "", status: int = 200):
    baseline = designation.baseline_of(compute.read_subject(subject))
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
