"""The record status grid (REDCap's record status dashboard): subjects × events × forms.

One query for the schedule and one for the statuses of the page's subjects,
whatever the number of subjects or forms. The body's rows are written here (`rows_html`), one
escaped string per cell: the template's loop with a `{% url %}` per cell cost ~1 s for 50
subjects of the co-clinical schedule (issue 16: a page must take under 200 ms).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.safestring import SafeString

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


# The mark a verified form's dot carries (its label says it in words).
VERIFICATION_MARK = {"verified": "✓", "cleared": "!"}


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

    def rows_html(self, study_slug: str, *, show_site: bool) -> SafeString:
        """The body's rows: the subject (linked to its page), its site, a dot per form linked to
        the form's entry page (its first instance), every value escaped."""
        entry = _pattern("records:entry", study_slug, with_form=True)
        subject_page = _pattern("web:subject", study_slug, with_form=False)
        out = []
        for row in self.rows:
            sid = row.subject.subject_id  # type: ignore[attr-defined]
            in_url = quote(sid, safe=_SAFE)
            out.append(
                f'<tr><th class="sticky"><a href="{escape(subject_page.replace(_SUBJECT, in_url))}">'
                f"{escape(sid)}</a></th>"
            )
            if show_site:
                out.append(f'<td class="muted">{escape(row.subject.site.code)}</td>')  # type: ignore[attr-defined]
            for cell in row.cells:
                href = (
                    entry.replace(_SUBJECT, in_url)
                    .replace(_EVENT, cell.event)
                    .replace(_FORM, cell.form)
                    .replace(_INSTANCE, str(cell.instances[0] if cell.instances else 1))
                )
                label = escape(cell.label)
                count = str(len(cell.instances)) if cell.repeating and cell.instances else ""
                count += VERIFICATION_MARK.get(cell.verification, "") if cell.instances else ""
                out.append(
                    f'<td class="cell"><a class="dot {cell.css}" title="{label}" aria-label="{label}" '
                    f'href="{escape(href)}">{count}</a></td>'
                )
            out.append("</tr>")
        return SafeString("".join(out))


# Placeholders reversed once per page and replaced per cell; event and form names are slugs.
_SUBJECT, _EVENT, _FORM, _INSTANCE = "zzsubjectzz", "zzeventzz", "zzformzz", "7777777"
_SAFE = "!$&'()*+,;=~:@"  # what Django's reverse leaves unquoted in a path


def _pattern(name: str, study_slug: str, *, with_form: bool) -> str:
    if with_form:
        return reverse(name, args=[study_slug, _SUBJECT, _EVENT, _FORM, int(_INSTANCE)])
    return reverse(name, args=[study_slug, _SUBJECT])


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
