"""Which subjects an export holds, and their chunks.

The subjects the user may see (capture.studies.access), narrowed by the spec's sites and ids
and to the arms of the chosen events (`on_selected_arms`); an unknown site or id is an error that does not tell whether it exists elsewhere. Subjects
are read a chunk at a time in id order (keyset pagination keeps each query cheap whatever the
size of the study).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core.exceptions import ValidationError

from capture.studies import access
from capture.studies.models import Study, Subject

from .selection import Selection
from .spec import ExportSpec

# What the export reads of a subject (convert.Cells.subject_value, the date rules, imaging): a
# chunk loads only these, not every column of three tables. Add a field here if an export shows it.
SUBJECT_FIELDS = (
    "subject_id",
    "kind",
    "model_type",
    "enrollment_date",
    "date_shift_days",
    "site__code",
    "arm__name",
    "derived_from__subject_id",
)


def visible_subjects(user, study: Study, spec: ExportSpec):
    """The queryset of the subjects the export covers (before any cohort filter)."""
    subjects = access.subjects_visible_to(user, study)
    if spec.sites:
        visible = set(access.sites_visible_to(user, study).values_list("code", flat=True))
        unseen = sorted(set(spec.sites) - visible)
        if unseen:
            # Same answer whether the site exists or not: existence must not leak.
            raise ValidationError(
                f"Site(s) {', '.join(unseen)} are not among your sites ({', '.join(sorted(visible))})."
            )
        subjects = subjects.filter(site__code__in=spec.sites)
    if spec.subjects:
        found = set(subjects.filter(subject_id__in=spec.subjects).values_list("subject_id", flat=True))
        missing = sorted(set(spec.subjects) - found)
        if missing:
            raise ValidationError(
                f"Subject(s) {', '.join(missing)} are not among the subjects you may export "
                "(check the ids and the site filter)."
            )
        subjects = subjects.filter(subject_id__in=spec.subjects)
    return subjects


def on_selected_arms(subjects, selection: Selection, spec: ExportSpec):
    """Narrowed to the subjects whose arm holds a selected event, when the spec chooses events,
    forms or items: picking only patient events (or forms) exports no animal-model rows, blank
    but for their ids, and the reverse. With nothing chosen, every subject is exported."""
    if not (spec.events or spec.forms or spec.items):
        return subjects
    return subjects.filter(arm_id__in={event.arm_id for event in selection.events})


def chunks(subjects, size: int) -> Iterator[list[Subject]]:
    """`subjects` in id order, `size` at a time, with the site, arm and parent subject."""
    base = subjects.select_related("site", "arm", "derived_from").only(*SUBJECT_FIELDS).order_by("subject_id")
    last = None
    while True:
        query = base if last is None else base.filter(subject_id__gt=last)
        chunk = list(query[:size])
        if not chunk:
            return
        last = chunk[-1].subject_id
        yield chunk
