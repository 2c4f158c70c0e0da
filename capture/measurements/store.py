"""Writing measurement reports: the one path every source (DICOM SR, measurement sheet) takes.

A source is read into an `IncomingReport` (plain values, the acquisition date on the clinical
calendar, identifiers already hashed or de-identified); `store_report` writes it in one
transaction with its audit event. A report with a subject gets its lesions and measurements at
once; a report without one waits in the linkage queue with its values kept on the row, and
`assign_report` stores them when a data manager (or a registered identifier) names the subject.

Lesion identity: per subject, by tracking UID when the source gives one, else by tracking
identifier (the lesion id). A lesion first seen after the subject's first measured timepoint is a
new lesion (role NEW); one seen at the first timepoint waits for designation (UNDESIGNATED).
Values are never edited: storing a report that names `supersedes` replaces that report's values in
every computation while both stay stored and audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from capture.accounts.system import user_or_none
from capture.audit.services import record_event
from capture.studies.models import Study, Subject
from capture.studies.services import require_writable

from .models import Lesion, Measurement, MeasurementReport

# Audit actions written here; each is described in docs/imaging.md.
STORE = "measurements.report.store"
ASSIGN = "measurements.report.assign"


@dataclass(frozen=True)
class Coded:
    """A coded concept: (coding scheme designator, code value, code meaning)."""

    scheme: str
    code: str
    meaning: str


@dataclass(frozen=True)
class MeasuredValue:
    """One measurement of one lesion as a source gives it."""

    tracking_id: str
    concept: Coded
    value: Decimal
    unit: str  # UCUM
    tracking_uid: str = ""
    finding: Coded | None = None
    site: Coded | None = None
    derivation: str = ""
    referenced_series_uid: str = ""
    is_node: bool = False

    def as_json(self) -> dict:
        data = asdict(self)
        data["value"] = str(self.value)
        return data

    @classmethod
    def from_json(cls, data: dict) -> MeasuredValue:
        def coded(value):
            return Coded(**value) if value else None

        return cls(
            **{
                **data,
                "concept": Coded(**data["concept"]),
                "finding": coded(data.get("finding")),
                "site": coded(data.get("site")),
                "value": Decimal(data["value"]),
            }
        )


@dataclass
class IncomingReport:
    """A report read from its source, before it is stored."""

    sop_uid: str  # de-identified; for a sheet, sheet:<upload>:<key>
    date: dt.date | None  # acquisition date on the clinical (real) calendar
    values: list[MeasuredValue] = field(default_factory=list)
    series_uid: str = ""
    study_uid: str = ""
    patient_hash: str = ""
    observer: str = ""


def event_for_day(subject: Subject, day: int | None) -> str:
    """The schedule event whose window holds `day` (nearest target day wins), or ''."""
    if day is None:
        return ""
    holding = [
        e for e in subject.arm.events.all() if e.day - e.window_before <= day <= e.day + e.window_after
    ]
    return min(holding, key=lambda e: abs(e.day - day)).name if holding else ""


def _shifted(date: dt.date | None, subject: Subject) -> dt.date | None:
    return None if date is None else date + dt.timedelta(days=subject.date_shift_days)


def _first_day(subject: Subject) -> dt.date | None:
    """The (shifted) date of the subject's earliest current report with measurements."""
    first = (
        MeasurementReport.objects.filter(
            subject=subject, superseded_by__isnull=True, measurements__isnull=False
        )
        .exclude(report_date=None)
        .order_by("report_date")
        .values_list("report_date", flat=True)
        .first()
    )
    return first


def _lesion(
    subject: Subject, value: MeasuredValue, report: MeasurementReport, first: dt.date | None
) -> Lesion:
    lesions = Lesion.objects.filter(subject=subject)
    found = None
    if value.tracking_uid:
        found = lesions.filter(tracking_uid=value.tracking_uid).first()
    if found is None:
        found = lesions.filter(tracking_id=value.tracking_id).first()
        if found is not None and value.tracking_uid and found.tracking_uid not in ("", value.tracking_uid):
            raise ValidationError(
                f"Lesion '{value.tracking_id}' of {subject.subject_id} is already tracked under another "
                f"tracking UID ({found.tracking_uid}); the report names {value.tracking_uid}."
            )
    if found is not None:
        if value.tracking_uid and not found.tracking_uid:
            found.tracking_uid = value.tracking_uid
            found.save(update_fields=["tracking_uid"])
        return found
    new = first is not None and report.report_date is not None and report.report_date > first
    finding, site = value.finding, value.site
    return Lesion.objects.create(
        study=subject.study,
        subject=subject,
        tracking_id=value.tracking_id,
        tracking_uid=value.tracking_uid,
        finding_code=finding.code if finding else "",
        finding_scheme=finding.scheme if finding else "",
        finding_meaning=finding.meaning if finding else "",
        site_code=site.code if site else "",
        site_scheme=site.scheme if site else "",
        site_meaning=site.meaning if site else "",
        is_node=value.is_node,
        role=Lesion.NEW if new else Lesion.UNDESIGNATED,
        first_report=report,
    )


def _store_values(report: MeasurementReport, subject: Subject, values: list[MeasuredValue]) -> int:
    first = _first_day(subject)
    rows = []
    for value in values:
        lesion = _lesion(subject, value, report, first)
        rows.append(
            Measurement(
                report=report,
                lesion=lesion,
                concept_code=value.concept.code,
                concept_scheme=value.concept.scheme,
                concept_meaning=value.concept.meaning,
                value=value.value,
                unit=value.unit,
                derivation=value.derivation,
                referenced_series_uid=value.referenced_series_uid,
            )
        )
    Measurement.objects.bulk_create(rows)
    return len(rows)


def _check_supersedes(supersedes: MeasurementReport | None, study: Study, subject: Subject | None) -> None:
    if supersedes is None:
        return
    if supersedes.study_id != study.pk or supersedes.subject_id != (subject.pk if subject else None):
        raise ValidationError("A correction must be of a report of the same subject.")
    if MeasurementReport.objects.filter(supersedes=supersedes).exists():
        raise ValidationError(
            f"Report {supersedes.sop_uid} has already been corrected; correct the newest report."
        )


@transaction.atomic
def store_report(
    *,
    actor,
    study: Study,
    subject: Subject | None,
    incoming: IncomingReport,
    source_kind: str,
    source: str,
    supersedes: MeasurementReport | None = None,
    imaging_study=None,
    storage_name: str = "",
) -> tuple[MeasurementReport, bool]:
    """Store one report; returns (report, created). A report already stored under the same
    de-identified SOP UID is returned unchanged (ingest is idempotent)."""
    require_writable(study, "storing measurements")
    existing = MeasurementReport.objects.filter(study=study, sop_uid=incoming.sop_uid).first()
    if existing is not None:
        return existing, False
    _check_supersedes(supersedes, study, subject)
    report = MeasurementReport.objects.create(
        study=study,
        subject=subject,
        imaging_study=imaging_study,
        source_kind=source_kind,
        source=source[:500],
        sop_uid=incoming.sop_uid,
        series_uid=incoming.series_uid,
        study_uid=incoming.study_uid,
        patient_hash=incoming.patient_hash,
        observer=incoming.observer,
        report_date=_shifted(incoming.date, subject) if subject else None,
        pending_date=None if subject else incoming.date,
        supersedes=supersedes,
        storage_name=storage_name,
        created_by=user_or_none(actor),
        pending_values=[] if subject else [v.as_json() for v in incoming.values],
    )
    if subject is not None:
        report.event = event_for_day(subject, report.day_offset())
        report.save(update_fields=["event"])
        _store_values(report, subject, incoming.values)
    record_event(
        actor=actor,
        study=study,
        action=STORE,
        object_type="measurement_report",
        object_id=report.pk,
        object_label=report.sop_uid,
        after={
            "subject": subject.subject_id if subject else None,
            "source": source_kind,
            "values": len(incoming.values),
            "supersedes": supersedes.sop_uid if supersedes else None,
        },
    )
    return report, True


@transaction.atomic
def assign_report(
    *, actor, report: MeasurementReport, subject: Subject, reason: str = ""
) -> MeasurementReport:
    """Give a queued report its subject: its date moves to the subject's calendar and its values
    become lesions and measurements. The caller has checked the actor may link data."""
    require_writable(report.study, "assigning measurement reports")
    if subject.study_id != report.study_id:
        raise ValidationError("The subject belongs to another study.")
    row = MeasurementReport.objects.select_for_update().get(pk=report.pk)
    if row.subject_id is not None:
        raise ValidationError(
            f"This report is already assigned to {row.subject}; it is no longer in the queue."
        )
    values = [MeasuredValue.from_json(v) for v in row.pending_values]
    row.subject = subject
    row.report_date = _shifted(row.pending_date, subject)
    row.pending_date = None
    row.pending_values = []
    row.assigned_at = timezone.now()
    row.assigned_by = user_or_none(actor)
    row.event = event_for_day(subject, row.day_offset())
    row.save()
    _store_values(row, subject, values)
    record_event(
        actor=actor,
        study=row.study,
        action=ASSIGN,
        object_type="measurement_report",
        object_id=row.pk,
        object_label=row.sop_uid,
        before={"subject": None},
        after={"subject": subject.subject_id, "values": len(values)},
        reason=reason or "assigned from the measurement queue",
    )
    return row
