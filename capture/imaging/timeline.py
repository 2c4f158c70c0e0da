"""A subject's timeline: dated form records and imaging studies on one axis of days from
enrolment, with the schedule's event windows, as plain data (for the JSON API and the picture).

What a user sees is decided by the study's disclosure policy (`capture/studies/disclosure.py`):
dates are real in the identified world and moved by the subject's date shift in the de-identified
one (the day offsets are the same either way, which is the point of one shift per subject), and
DICOM free text (StudyDescription) is withheld from the de-identified world.

Responses (issue 17) are the stored ones (capture/measurements/compute.py): each timepoint's
RECIST 1.1 or mRECIST numbers on the same axis, the best overall response, and for the co-clinical
view the best responses of the subject's relatives the user sees (a patient's derived models, a
model's source patient).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field

from capture.definitions.models import DataElement
from capture.measurements.models import BestResponse, TimepointResponse
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject

from . import publish
from .models import ImagingStudy

# A pair of date items in one record whose names differ only by these words makes a bar.
START = re.compile(r"(^|_)(start)(_|$)")
STOP_WORDS = ("stop", "end")


@dataclass
class Window:
    event: str
    title: str
    day: int
    start: int
    end: int


@dataclass
class Bar:
    label: str
    form: str
    event: str
    start_day: int
    end_day: int | None  # None: still going (no stop date yet)
    start_date: str
    end_date: str | None


@dataclass
class Mark:
    label: str
    form: str
    event: str
    item: str
    day: int
    date: str


@dataclass
class Scan:
    study_uid: str
    day: int | None
    date: str | None
    modalities: list[str]
    description: str
    body_part: str
    series_count: int
    instance_count: int
    radiopharmaceutical: str
    injected_dose_mbq: float | None
    event: str | None  # the schedule event whose window holds the scan
    event_title: str | None
    in_window: bool
    # The research archives holding its de-identified instances (publish.archive_links).
    archives: list[dict] = field(default_factory=list)


@dataclass
class ResponsePoint:
    method: str  # TimepointResponse.METHODS: recist11, mrecist
    day: int
    date: str
    event: str
    baseline: bool
    overall: str  # blank at baseline and for mRECIST timepoints (mRECIST is one category per model)
    target: str
    non_target: str
    new_lesions: bool
    sum_mm: float | None
    nadir_mm: float | None
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    volume_mm3: float | None


@dataclass
class BestOf:
    subject_id: str
    kind: str  # "Patient", or the model type (PDX, GEMM)
    method: str
    response: str
    confirmed: bool
    best_response_pct: float | None
    best_average_response_pct: float | None


@dataclass
class Timeline:
    subject_id: str
    anchor: str
    enrollment_date: str
    dates_shifted: bool
    windows: list[Window] = field(default_factory=list)
    treatments: list[Bar] = field(default_factory=list)
    assessments: list[Mark] = field(default_factory=list)
    imaging: list[Scan] = field(default_factory=list)
    responses: list[ResponsePoint] = field(default_factory=list)
    best: list[BestOf] = field(default_factory=list)
    coclinical: list[BestOf] = field(default_factory=list)  # the related subjects' best responses

    def as_dict(self) -> dict:
        return asdict(self)

    def day_range(self) -> tuple[int, int]:
        days = [0]
        days += [d for w in self.windows for d in (w.start, w.end)]
        days += [d for b in self.treatments for d in (b.start_day, b.end_day) if d is not None]
        days += [m.day for m in self.assessments]
        days += [s.day for s in self.imaging if s.day is not None]
        days += [r.day for r in self.responses]
        return min(days), max(days)


def _parse(value) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _date_items(records) -> dict[int, list[dict]]:
    """form pk -> its items of datatype date (with `rows_of`: the repeating group, if any)."""
    forms = {r.form_id: r.form for r in records}
    refs = {item["element"] for form in forms.values() for item in form.items()}
    dated = set()
    for public_id, version in (ref.rsplit("@", 1) for ref in refs):
        # Identifying dates (birth date) are not events of the study: they stay off the timeline.
        if DataElement.objects.filter(
            public_id=public_id, version=version, datatype="date", identifier=False
        ).exists():
            dated.add(f"{public_id}@{version}")
    return {pk: [item for item in form.items() if item["element"] in dated] for pk, form in forms.items()}


def _stop_name(name: str) -> list[str]:
    return [START.sub(rf"\g<1>{word}\g<3>", name, count=1) for word in STOP_WORDS]


def build(user, subject: Subject) -> Timeline:
    """The timeline of `subject` as `user` may see it (the caller has checked access)."""
    disclosure = Disclosure.for_user(user, subject.study)

    def show(date: dt.date) -> str:
        return disclosure.date(subject, date).isoformat()

    timeline = Timeline(
        subject_id=subject.subject_id,
        anchor="enrollment",
        enrollment_date=show(subject.enrollment_date),
        dates_shifted=disclosure.shifts_dates,
    )
    events = list(subject.arm.events.order_by("order"))
    timeline.windows = [
        Window(e.name, e.title, e.day, e.day - e.window_before, e.day + e.window_after) for e in events
    ]
    records = list(
        FormRecord.objects.filter(subject=subject)
        .select_related("form", "event")
        .order_by("event__order", "pk")
    )
    items_by_form = _date_items(records)
    for record in records:
        items = items_by_form.get(record.form_id, [])
        bars, used = _bars(record, items, subject.enrollment_date, show)
        timeline.treatments += bars
        timeline.assessments += _marks(record, items, used, subject.enrollment_date, show)
    timeline.imaging = _scans(subject, timeline.windows, disclosure, show)
    timeline.responses = _responses(subject, show)
    timeline.best = _best([subject])
    relatives = access.subjects_visible_to(user, subject.study).filter(
        pk=subject.derived_from_id
    ) | access.subjects_visible_to(user, subject.study).filter(derived_from=subject)
    timeline.coclinical = _best(list(relatives.order_by("subject_id")))
    return timeline


def _number(value) -> float | None:
    return None if value is None else float(value)


def _responses(subject: Subject, show) -> list[ResponsePoint]:
    """The subject's stored timepoint responses, dated as the user may see them."""
    rows = TimepointResponse.objects.filter(subject=subject).order_by("method", "day")
    return [
        ResponsePoint(
            method=row.method,
            day=row.day,
            date=show(subject.enrollment_date + dt.timedelta(days=row.day)),
            event=row.event,
            baseline=row.is_baseline,
            overall=row.overall,
            target=row.target,
            non_target=row.non_target,
            new_lesions=row.new_lesions,
            sum_mm=_number(row.sum_mm),
            nadir_mm=_number(row.nadir_mm),
            change_from_baseline_pct=row.change_from_baseline_pct,
            change_from_nadir_pct=row.change_from_nadir_pct,
            volume_mm3=_number(row.volume_mm3),
        )
        for row in rows
    ]


def _best(subjects: list[Subject]) -> list[BestOf]:
    by_pk = {subject.pk: subject for subject in subjects}
    rows = BestResponse.objects.filter(subject_id__in=list(by_pk)).order_by("subject_id", "method")
    return [
        BestOf(
            subject_id=by_pk[row.subject_id].subject_id,
            kind=by_pk[row.subject_id].model_type or by_pk[row.subject_id].get_kind_display(),
            method=row.method,
            response=row.response,
            confirmed=row.confirmed,
            best_response_pct=row.best_response_pct,
            best_average_response_pct=row.best_average_response_pct,
        )
        for row in rows
    ]


def _bars(record: FormRecord, items: list[dict], enrolled: dt.date, show) -> tuple[list[Bar], set[str]]:
    """The record's start/stop date pairs as bars, and the names of the items they used."""
    by_name = {i["name"]: i for i in items if not i["repeating"]}
    bars: list[Bar] = []
    used: set[str] = set()
    for name in by_name:
        if not START.search(name):
            continue
        start = _parse(record.data.get(name))
        stop_name = next((n for n in _stop_name(name) if n in by_name), None)
        if start is None or stop_name is None:
            continue
        stop = _parse(record.data.get(stop_name))
        used |= {name, stop_name}
        bars.append(
            Bar(
                label=record.form.title,
                form=record.form_name,
                event=record.event.name,
                start_day=(start - enrolled).days,
                end_day=(stop - enrolled).days if stop else None,
                start_date=show(start),
                end_date=show(stop) if stop else None,
            )
        )
    return bars, used


def _marks(record: FormRecord, items: list[dict], used: set[str], enrolled: dt.date, show) -> list[Mark]:
    """The record's other dates (in every row of a repeating group) as marks."""
    marks: list[Mark] = []
    for item in items:
        rows = record.data.get(item["group"]) if item["repeating"] else [record.data]
        for row in rows if isinstance(rows, list) else []:
            if item["name"] in used or not isinstance(row, dict):
                continue
            date = _parse(row.get(item["name"]))
            if date is None:
                continue
            marks.append(
                Mark(
                    label=f"{record.form.title} ({record.event.title})",
                    form=record.form_name,
                    event=record.event.name,
                    item=item["name"],
                    day=(date - enrolled).days,
                    date=show(date),
                )
            )
    return marks


def _scans(subject: Subject, windows: list[Window], disclosure: Disclosure, show) -> list[Scan]:
    """The subject's imaging studies, each placed in the schedule window that holds it."""
    found: list[Scan] = []
    scans = (
        ImagingStudy.objects.filter(subject=subject).select_related("subject").order_by("study_date", "pk")
    )
    archives = publish.archive_links(subject.study, [scan.study_uid for scan in scans])
    for scan in scans:
        day = scan.day_offset()
        window = _window_for(windows, day)
        date = scan.real_date()
        found.append(
            Scan(
                study_uid=scan.study_uid,
                day=day,
                date=show(date) if date else None,
                modalities=scan.modality_list,
                description=disclosure.dicom_text(scan.description),
                body_part=scan.body_part,
                series_count=scan.series_count,
                instance_count=scan.instance_count,
                radiopharmaceutical=scan.radiopharmaceutical,
                injected_dose_mbq=scan.injected_dose_mbq,
                event=window.event if window else None,
                event_title=window.title if window else None,
                in_window=window is not None,
                archives=archives.get(scan.study_uid, []),
            )
        )
    return found


def _window_for(windows: list[Window], day: int | None) -> Window | None:
    if day is None:
        return None
    holding = [w for w in windows if w.start <= day <= w.end]
    # Overlapping windows: the event whose target day is nearest wins.
    return min(holding, key=lambda w: abs(w.day - day)) if holding else None
