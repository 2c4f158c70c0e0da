"""The record status grid (REDCap's record status dashboard): subjects × events × forms.

One query for the schedule and one for the statuses of the page's subjects,
whatever the number of subjects or forms.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef

from capture.definitions.models import Arm, EventForm
from capture.records.models import FormRecord, Status, Verification

STATUS_CLASS = {
    None: "empty",
    Status.INCOMPLETE: "incomplete",
    Status.UNVERIFIED: "unverified",
    Status.COMPLETE: "complete",
}


VERIFICATION_LABEL = {
    "": "",
    "verified": " · verified",
    "cleared": " · verification cleared: a verified value changed",
}


def _verification(found: list) -> str:
    if found and all(verified for _, _, verified, _ in found):
        return "verified"
    return "cleared" if any(cleared for _, _, verified, cleared in found if not verified) else ""


@dataclass
class Cell:
    event: str
    form: str
    form_title: str
    status: int | None  # the lowest status among the instances: one incomplete instance shows red
    instances: list[int] = field(default_factory=list)
    repeating: bool = False
    # "verified": every instance's form is verified; "cleared": a verified value changed since.
    verification: str = ""

    @property
    def css(self) -> str:
        return STATUS_CLASS[self.status]  # type: ignore[index]  # a shown slot has a status

    @property
    def label(self) -> str:
        text = "No data" if self.status is None else Status(self.status).label
        return (
            f"{self.form_title}: {text}"
            + (f" ({len(self.instances)} instances)" if self.repeating else "")
            + VERIFICATION_LABEL[self.verification]
        )


@dataclass
class Row:
    subject: object
    cells: list[Cell]


@dataclass
class Grid:
    events: list[tuple[object, list[EventForm]]]
    rows: list[Row]


def build_grid(arm: Arm, subjects: list) -> Grid:
    event_forms = list(EventForm.objects.filter(event__arm=arm).select_related("event", "form"))
    by_event: dict = defaultdict(list)
    for ef in event_forms:
        by_event[ef.event].append(ef)
    events = sorted(by_event.items(), key=lambda pair: pair[0].order)
    statuses: dict = defaultdict(list)
    marks = Verification.objects.filter(record=OuterRef("pk"), field="")
    for subject_id, event_id, form_name, instance, status, verified, cleared in (
        FormRecord.objects.filter(subject__in=subjects)
        .annotate(
            verified=Exists(marks.filter(cleared_at=None)),
            cleared=Exists(marks.filter(cleared_at__isnull=False)),
        )
        .values_list("subject_id", "event_id", "form_name", "instance", "status", "verified", "cleared")
    ):
        statuses[(subject_id, event_id, form_name)].append((instance, status, verified, cleared))
    rows = []
    for subject in subjects:
        cells = []
        for event, forms in events:
            for ef in forms:
                found = sorted(statuses.get((subject.pk, event.pk, ef.form.name), []))
                cells.append(
                    Cell(
                        event=event.name,
                        form=ef.form.name,
                        form_title=ef.form.title,
                        status=min(s for _, s, _, _ in found) if found else None,
                        instances=[i for i, _, _, _ in found],
                        repeating=ef.repeating,
                        verification=_verification(found),
                    )
                )
        rows.append(Row(subject, cells))
    return Grid(events, rows)
