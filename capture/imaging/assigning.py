"""Assigning a queued item (an imaging study, a measurement report) to a subject from its queue
page: the one POST step both queues share. The caller has found the item within a study the user
may import into; the subject is asked of access.py (another site's is 404), and the assignment
itself is the caller's service, which checks and audits it."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect

from capture.studies import access

from .forms import AssignForm


def assign_queued(
    request, study, item, *, prefix: str, noun: str, done: str, assign: Callable[..., int], back: str
):
    """Assign `item` to the subject the form names through `assign(actor, item, subject, reason)`
    (which answers how many items it assigned), say what happened, and go back to the queue `back`."""
    subjects = list(access.subjects_visible_to(request.user, study).values_list("subject_id", flat=True))
    form = AssignForm(request.POST, subjects=subjects, prefix=f"{prefix}{item.pk}")
    if not form.is_valid():
        messages.error(request, f"Choose a subject to assign the {noun} to.")
        return redirect(back, slug=study.slug)
    subject = access.get_subject(request.user, study, form.cleaned_data["subject"])
    try:
        count = assign(request.user, item, subject, form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        more = f" and {count - 1} more of the same patient" if count > 1 else ""
        messages.success(request, f"{done} {subject.subject_id}{more}.")
    return redirect(back, slug=study.slug)
