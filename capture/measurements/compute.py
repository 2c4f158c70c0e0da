"""Responses computed from a subject's stored measurements, and stored for timelines and exports.

`recompute_subject(subject)` reads the subject's current reports (a report superseded by another
does not count), groups them into timepoints, builds the RECIST 1.1 assessments and stores the
subject's TimepointResponse and BestResponse rows, replacing the old ones in one transaction. It
is called whenever a report, a designation or a lesion status of the subject changes, and for
every subject of a study when the study's response rule changes (`recompute_study`).

How the stored data become RECIST inputs (docs/imaging.md, "Response", says the same for users):
- a timepoint is the reports of one schedule event (the report's event, else the event whose
  window holds its date), or of one day when no window holds it; its day is its first report's,
  in days from enrolment; a later report of the same timepoint wins for a lesion measured twice;
- diameters are the long axis (concepts.LONG_AXIS) and, for lymph nodes, the short axis
  (concepts.SHORT_AXIS), in mm (cm converted); volumes (concepts.VOLUME) in mm3;
- baseline: the earliest timepoint at which every target lesion has its diameter (without
  targets: the earliest at which a non-target lesion was seen); earlier timepoints are ignored;
- a non-target lesion's status is the reader's (LesionStatus, the newest in the timepoint's
  reports), else follows its measurements (0 mm, or a node under 10 mm: absent; else present),
  else it was not evaluated;
- a lesion first seen after baseline and never designated becomes a new lesion (role NEW), and a
  timepoint where a new lesion is seen (measured above 0, or assessed present) is PD.
Animal models (Subject.ANIMAL: PDX, GEMM) also get mRECIST (Gao et al. 2015) from the series of
their summed tumour volumes, day 0 being the first timepoint with a volume.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from capture.studies.models import Study, Subject

from . import concepts, mrecist, response
from .models import (
    BestResponse,
    Lesion,
    LesionStatus,
    Measurement,
    MeasurementReport,
    ResponseRule,
    TimepointResponse,
)

LONG, SHORT, VOLUME = "long", "short", "volume"
_AXES = {concepts.key(concepts.LONG_AXIS): LONG, concepts.key(concepts.SHORT_AXIS): SHORT}
_TO_MM = {concepts.MM: Decimal(1), concepts.CM: Decimal(10)}
_TO_MM3 = {
    concepts.MM3: Decimal(1),
    concepts.CM3: Decimal(1000),
    concepts.ML: Decimal(1000),
    "ml": Decimal(1000),
}
CENT = Decimal("0.01")
CHUNK = 500  # subjects read, computed and stored together by recompute_study
MILLI = Decimal("0.001")


@dataclass
class Timepoint:
    """The reports of one event (or day) and what they say of each lesion (by lesion pk)."""

    day: int
    event: str
    reports: list[MeasurementReport] = field(default_factory=list)
    values: dict[int, dict[str, Decimal]] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)

    def seen(self, lesion_pk: int) -> bool:
        return lesion_pk in self.values or lesion_pk in self.statuses


@dataclass
class SubjectData:
    """A subject's lesions and timepoints (day order), as the response rules read them."""

    subject: Subject
    lesions: list[Lesion]
    timepoints: list[Timepoint]

    def targets(self) -> list[Lesion]:
        return [lesion for lesion in self.lesions if lesion.role == Lesion.TARGET]

    def baseline_index(self) -> int | None:
        """The baseline timepoint (see the module docstring); None: there is none yet."""
        targets = self.targets()
        for index, point in enumerate(self.timepoints):
            if targets and all(diameter(lesion, point) is not None for lesion in targets):
                return index
            if not targets and any(point.seen(lesion.pk) for lesion in self.lesions):
                # Before any designation: the first timepoint with a lesion is the candidate baseline.
                return index
        return None

    def first_seen(self) -> dict[int, int]:
        """Lesion pk -> the index of the first timepoint that saw it."""
        found: dict[int, int] = {}
        for index, point in enumerate(self.timepoints):
            for pk in [*point.values, *point.statuses]:
                found.setdefault(pk, index)
        return found


def diameter(lesion: Lesion, point: Timepoint) -> Decimal | None:
    """The diameter RECIST sums: the short axis of a node, the long axis of any other lesion."""
    return point.values.get(lesion.pk, {}).get(SHORT if lesion.is_node else LONG)


# ---------------------------------------------------------------------------- reading


def _windows(subject: Subject) -> list[tuple[str, int, int, int]]:
    return [
        (e.name, e.day, e.day - e.window_before, e.day + e.window_after)
        for e in subject.arm.events.order_by("order")
    ]


def _event_at(windows: Sequence[tuple[str, int, int, int]], day: int) -> str:
    holding = [w for w in windows if w[2] <= day <= w[3]]
    return min(holding, key=lambda w: abs(w[1] - day))[0] if holding else ""


def _day(subject: Subject, report: MeasurementReport) -> int:
    assert report.report_date is not None  # noqa: S101 - the query keeps dated reports only
    real = report.report_date - dt.timedelta(days=subject.date_shift_days)
    return (real - subject.enrollment_date).days


def _group(subject: Subject, reports, windows) -> list[Timepoint]:
    """Reports (date order) into timepoints by event, or by day outside every window."""
    groups: dict[object, Timepoint] = {}
    for report in reports:
        day = _day(subject, report)
        event = report.event or _event_at(windows, day)
        point = groups.setdefault(event or day, Timepoint(day, event))
        point.reports.append(report)
    merged: list[Timepoint] = []
    for point in sorted(groups.values(), key=lambda p: p.day):
        if merged and merged[-1].day == point.day:  # two events on one day: one timepoint
            merged[-1].reports += point.reports
        else:
            merged.append(point)
    return merged


def _normalised(kind: str, value: Decimal, unit: str) -> Decimal | None:
    factor = (_TO_MM3 if kind == VOLUME else _TO_MM).get(unit)
    return None if factor is None else value * factor


def _fill(points: dict[int, Timepoint], subject_ids: list[int]) -> None:
    """Each timepoint's measurements and reader statuses (`points` by report pk), in two queries."""
    rows = Measurement.objects.filter(
        report__subject_id__in=subject_ids, report__superseded_by__isnull=True
    ).order_by("report_id", "pk")
    volume = concepts.key(concepts.VOLUME)
    for report_id, lesion_id, scheme, code, value, unit in rows.values_list(
        "report_id", "lesion_id", "concept_scheme", "concept_code", "value", "unit"
    ):
        kind = VOLUME if (scheme, code) == volume else _AXES.get((scheme, code))
        if kind is None or report_id not in points:
            continue  # SUV and other measurements do not enter the response; nor undated reports
        normal = _normalised(kind, value, unit)
        if normal is not None:
            points[report_id].values.setdefault(lesion_id, {})[kind] = normal
    statuses = LesionStatus.objects.filter(report__subject_id__in=subject_ids).order_by("created_at", "pk")
    for report_id, lesion_id, status in statuses.values_list("report_id", "lesion_id", "status"):
        if report_id in points:
            points[report_id].statuses[lesion_id] = status  # the newest assessment wins


def read_subjects(
    subjects: Sequence[Subject], windows: dict[int, list] | None = None
) -> dict[int, SubjectData]:
    """Each subject's lesions and current, dated reports grouped into timepoints (by subject pk),
    in four queries whatever the number of subjects. `windows` caches the arms' event windows."""
    windows = {} if windows is None else windows
    ids = [subject.pk for subject in subjects]
    reports: dict[int, list[MeasurementReport]] = {pk: [] for pk in ids}
    found = (
        MeasurementReport.objects.filter(
            subject_id__in=ids, report_date__isnull=False, superseded_by__isnull=True
        )
        .order_by("report_date", "pk")
        .only("pk", "report_date", "event", "subject_id")
    )
    for report in found:
        reports[report.subject_id].append(report)  # type: ignore[index]  # the filter keeps assigned reports
    lesions: dict[int, list[Lesion]] = {pk: [] for pk in ids}
    for lesion in Lesion.objects.filter(subject_id__in=ids).order_by("tracking_id", "pk"):
        lesions[lesion.subject_id].append(lesion)
    data: dict[int, SubjectData] = {}
    by_report: dict[int, Timepoint] = {}
    for subject in subjects:
        if subject.arm_id not in windows:
            windows[subject.arm_id] = _windows(subject)
        points = _group(subject, reports[subject.pk], windows[subject.arm_id])
        by_report |= {report.pk: point for point in points for report in point.reports}
        data[subject.pk] = SubjectData(subject, lesions[subject.pk], points)
    _fill(by_report, ids)
    return data


def read_subject(subject: Subject) -> SubjectData:
    return read_subjects([subject])[subject.pk]


# ---------------------------------------------------------------------------- RECIST inputs


def non_target_status(lesion: Lesion, point: Timepoint) -> response.NonTargetStatus | None:
    """A non-target lesion's status at a timepoint (None: not evaluated)."""
    if lesion.pk in point.statuses:
        return response.NonTargetStatus(point.statuses[lesion.pk])
    values = point.values.get(lesion.pk)
    if not values:
        return None
    size = diameter(lesion, point)
    if size is None:
        size = values.get(LONG, values.get(VOLUME))
    if size is None:
        return response.NonTargetStatus.PRESENT
    gone = size < response.NORMAL_NODE_MM if lesion.is_node and SHORT in values else size == 0
    return response.NonTargetStatus.ABSENT if gone else response.NonTargetStatus.PRESENT


def _new_lesion_seen(lesions: Sequence[Lesion], point: Timepoint) -> bool:
    for lesion in lesions:
        status = point.statuses.get(lesion.pk)
        if status in ("present", "progression"):
            return True
        sizes = point.values.get(lesion.pk, {}).values()
        if status is None and any(size > 0 for size in sizes):
            return True
    return False


def _assessment(data: SubjectData, point: Timepoint, day: int, new: Sequence[Lesion]) -> response.Assessment:
    targets = {}
    for lesion in data.targets():
        values = point.values.get(lesion.pk)
        if values is not None and diameter(lesion, point) is not None:
            long, short = values.get(LONG), values.get(SHORT)
            targets[str(lesion.pk)] = response.Measurement(
                float(long) if long is not None else None, float(short) if short is not None else None
            )
    non_targets = {}
    for lesion in data.lesions:
        if lesion.role == Lesion.NON_TARGET and (status := non_target_status(lesion, point)) is not None:
            non_targets[str(lesion.pk)] = status
    return response.Assessment(day, targets, non_targets, _new_lesion_seen(new, point))


def _roles(data: SubjectData, base: int) -> list[int]:
    """Lesions never designated and first seen after baseline become new lesions (and one made
    new that way goes back when baseline moves past it): the pks whose role changes."""
    first = data.first_seen()
    changed = []
    for lesion in data.lesions:
        if lesion.designated_at is not None or lesion.role not in (Lesion.UNDESIGNATED, Lesion.NEW):
            continue
        role = Lesion.NEW if first.get(lesion.pk, base) > base else Lesion.UNDESIGNATED
        if role != lesion.role:
            lesion.role = role
            changed.append(lesion.pk)
    return changed


# ---------------------------------------------------------------------------- rows


def _dec(value: float | None, step: Decimal = CENT) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(step)


def _recist_rows(data: SubjectData, rule: response.ConfirmationRule) -> tuple[list, list, list[int]]:
    """(timepoint rows, best rows, lesions whose role changed) of RECIST 1.1."""
    base = data.baseline_index()
    if base is None or not any(lesion.role in (Lesion.TARGET, Lesion.NON_TARGET) for lesion in data.lesions):
        return [], [], []
    changed = _roles(data, base)
    new = [lesion for lesion in data.lesions if lesion.role == Lesion.NEW]
    designated = [
        response.Lesion(str(lesion.pk), lesion.role == Lesion.TARGET, lesion.is_node)
        for lesion in data.lesions
        if lesion.role in (Lesion.TARGET, Lesion.NON_TARGET)
    ]
    start = data.timepoints[base]
    baseline = _assessment(data, start, 0, new)
    later = data.timepoints[base + 1 :]
    results = response.assess(
        designated, baseline, [_assessment(data, p, p.day - start.day, new) for p in later]
    )
    subject = data.subject
    common = {"study_id": subject.study_id, "subject": subject, "method": TimepointResponse.RECIST}
    base_sum = sum((diameter(lesion, start) or Decimal(0) for lesion in data.targets()), Decimal(0))
    rows = [
        TimepointResponse(
            **common,
            report=start.reports[0],
            event=start.event,
            day=start.day,
            is_baseline=True,
            sum_mm=base_sum.quantize(CENT) if data.targets() else None,
            overall="",
        )
    ]
    for point, result in zip(later, results, strict=True):
        rows.append(_recist_row(common, point, result))
    best = []
    if results:
        found = response.best_overall_response(results, rule)
        best.append(
            BestResponse(
                study_id=subject.study_id,
                subject=subject,
                method=TimepointResponse.RECIST,
                response=str(found),
                confirmed=rule.confirm,
            )
        )
    return rows, best, changed


def _recist_row(common: dict, point: Timepoint, result: response.TimepointResult) -> TimepointResponse:
    return TimepointResponse(
        **common,
        report=point.reports[0],
        event=point.event,
        day=point.day,
        sum_mm=_dec(result.sum_mm),
        nadir_mm=_dec(result.nadir_mm),
        change_from_baseline_pct=result.change_from_baseline_pct,
        change_from_nadir_pct=result.change_from_nadir_pct,
        target=str(result.target or ""),
        non_target=str(result.non_target or ""),
        new_lesions=result.new_lesions,
        overall=str(result.overall),
    )


def _mrecist_rows(data: SubjectData) -> tuple[list, list]:
    """mRECIST of an animal model: a row per timepoint with a volume, and the category."""
    series = []
    for point in data.timepoints:
        volumes = [values[VOLUME] for values in point.values.values() if VOLUME in values]
        if volumes:
            series.append((point, sum(volumes, Decimal(0))))
    if not series or series[0][1] <= 0:
        return [], []
    subject, first = data.subject, series[0]
    common = {"study_id": subject.study_id, "subject": subject, "method": TimepointResponse.MRECIST}
    rows = [
        TimepointResponse(
            **common,
            report=point.reports[0],
            event=point.event,
            day=point.day,
            is_baseline=point is first[0],
            volume_mm3=volume.quantize(MILLI),
            change_from_baseline_pct=float((volume - first[1]) / first[1] * 100),
            overall="",
        )
        for point, volume in series
    ]
    try:
        found = mrecist.mrecist([p.day - first[0].day for p, _ in series], [float(v) for _, v in series])
    except ValueError:
        return rows, []  # no measurement 10 days after the first yet: no category
    best = BestResponse(
        study_id=subject.study_id,
        subject=subject,
        method=TimepointResponse.MRECIST,
        response=str(found.category),
        best_response_pct=found.best_response_pct,
        best_average_response_pct=found.best_average_response_pct,
    )
    return rows, [best]


# ---------------------------------------------------------------------------- entry points


def rule_for(study: Study) -> response.ConfirmationRule:
    """The study's confirmation rule (ResponseRule; the defaults without one)."""
    found = ResponseRule.objects.filter(study=study).first()
    if found is None:
        return response.ConfirmationRule()
    return response.ConfirmationRule(found.confirm, found.confirm_min_days, found.sd_min_days)


def _computed(data: SubjectData, rule: response.ConfirmationRule) -> tuple[list, list, dict[int, str]]:
    """(timepoint rows, best rows, {lesion pk: its new role}) of one subject."""
    rows, best, changed = _recist_rows(data, rule)
    if data.subject.kind == Subject.ANIMAL:
        more_rows, more_best = _mrecist_rows(data)
        rows, best = rows + more_rows, best + more_best
    return rows, best, {lesion.pk: lesion.role for lesion in data.lesions if lesion.pk in changed}


def _store(subject_ids: list[int], rows: list, best: list, roles: dict[int, str]) -> None:
    """Replace the subjects' stored responses (the caller holds the transaction)."""
    for role in (Lesion.NEW, Lesion.UNDESIGNATED):
        pks = [pk for pk, new in roles.items() if new == role]
        if pks:
            Lesion.objects.filter(pk__in=pks).update(role=role)
    TimepointResponse.objects.filter(subject_id__in=subject_ids).delete()
    BestResponse.objects.filter(subject_id__in=subject_ids).delete()
    TimepointResponse.objects.bulk_create(rows, batch_size=2000)
    BestResponse.objects.bulk_create(best, batch_size=2000)


def recompute_subject(subject: Subject, *, rule: response.ConfirmationRule | None = None) -> None:
    """Replace the subject's stored responses with those its current data give (one transaction)."""
    rule = rule_for(subject.study) if rule is None else rule
    with transaction.atomic():
        _store([subject.pk], *_computed(read_subject(subject), rule))


def subjects_with_measurements(study: Study):
    return Subject.objects.filter(study=study, lesions__isnull=False).distinct().order_by("pk")


def recompute_study(
    study: Study, progress: Callable[[int, int], None] | None = None, *, chunk: int = CHUNK
) -> int:
    """Recompute every subject of the study that has lesions, `chunk` subjects per read and per
    transaction (one commit each, not one per subject); returns how many."""
    rule = rule_for(study)
    subjects = list(subjects_with_measurements(study).select_related("study"))
    windows: dict[int, list] = {}
    for start in range(0, len(subjects), chunk):
        part = subjects[start : start + chunk]
        rows: list = []
        best: list = []
        roles: dict[int, str] = {}
        with transaction.atomic():
            for data in read_subjects(part, windows).values():
                more_rows, more_best, more_roles = _computed(data, rule)
                rows += more_rows
                best += more_best
                roles |= more_roles
            _store([subject.pk for subject in part], rows, best, roles)
        if progress is not None:
            progress(start + len(part), len(subjects))
    return len(subjects)
