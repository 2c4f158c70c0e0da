"""Where the entry page goes after a save: REDCap's Save & stay, next form, next record, exit.

`after_save` names the page for the button the user pressed (`__next` of the POST):
- "stay" (or nothing): the same form again;
- "form": the next form of the subject's schedule (the next one at this event, then the first of
  the next event), or the subject's page after the last one;
- "next_subject": the same form of the next subject this user may see in the arm (by study id),
  or the dashboard after the last one;
- "exit": the subject's page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from capture.definitions.models import EventForm
from capture.studies import access


@dataclass(frozen=True)
class Next:
    url: str
    note: str = ""  # said to the user when the button could not go where it says


def entry_url(study, subject_id: str, event: str, form: str, instance: int = 1) -> str:
    return reverse("records:entry", args=[study.slug, subject_id, event, form, instance])


def after_save(choice: str, user, subject, event, form_name: str, instance: int) -> Next:
    study = subject.study
    if choice == "form":
        return _next_form(subject, event, form_name)
    if choice == "next_subject":
        return _next_subject(user, subject, event, form_name)
    if choice == "exit":
        return Next(reverse("web:subject", args=[study.slug, subject.subject_id]))
    return Next(entry_url(study, subject.subject_id, event.name, form_name, instance))


def _next_form(subject, event, form_name: str) -> Next:
    slots = list(
        EventForm.objects.filter(event__arm=event.arm)
        .order_by("event__order", "order")
        .values_list("event__name", "form__name")
    )
    here = slots.index((event.name, form_name)) if (event.name, form_name) in slots else len(slots)
    if here + 1 < len(slots):
        next_event, next_form = slots[here + 1]
        return Next(entry_url(subject.study, subject.subject_id, next_event, next_form))
    return Next(
        reverse("web:subject", args=[subject.study.slug, subject.subject_id]),
        "That was the subject's last form.",
    )


def _next_subject(user, subject, event, form_name: str) -> Next:
    study = subject.study
    later = (
        access.subjects_visible_to(user, study)
        .filter(arm_id=subject.arm_id, subject_id__gt=subject.subject_id)
        .order_by("subject_id")
        .values_list("subject_id", flat=True)
        .first()
    )
    if later is None:
        dashboard = reverse("web:dashboard", args=[study.slug])
        return Next(f"{dashboard}?arm={event.arm.name}", "That was the last subject you see in this arm.")
    return Next(entry_url(study, later, event.name, form_name))
