"""Imaging workflows: ingest headers, link studies to subjects, assign the queue.

Every write runs in one transaction and records its audit event in it. Reading files and
calling archives happens before the transaction, so a slow archive never holds a lock.
Raw identifiers are hashed on arrival (`pseudonyms.source_hash`) and never stored.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from capture.accounts.system import require_actor, user_or_none
from capture.audit.services import record_event
from capture.studies import access, pseudonyms
from capture.studies.models import Study, Subject

from .dicomread import Failure, Header
from .models import ImagingInstance, ImagingSeries, ImagingStudy, QuarantinedInstance, SourceIdentifier

Progress = Callable[..., None]

# Audit actions written here; if you add one, say what it means in docs/imaging.md.
INGEST = "imaging.ingest"
ASSIGN = "imaging.assign"
IDENTIFIER = "imaging.identifier.add"
RELEASE = "imaging.quarantine.release"
REJECT = "imaging.quarantine.reject"


WHAT = {"import_data": "linking images", "export_deidentified": "de-identified copies of images"}


def require(actor, study: Study, codename: str = "import_data") -> None:
    """The actor must hold the permission (the system actor holds every one; None is refused)."""
    if not access.can(require_actor(actor), codename, study):
        raise PermissionDenied(f"Your role in {study.name} does not allow {WHAT.get(codename, codename)}.")


def parse_da(value: str) -> dt.date | None:
    value = (value or "").strip()[:8]
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date()  # noqa: DTZ007 - a DICOM DA is a calendar date
    except ValueError:
        return None


def shifted(date: dt.date | None, subject: Subject | None) -> dt.date | None:
    if date is None or subject is None:
        return None
    return date + dt.timedelta(days=subject.date_shift_days)


def subject_for_hashes(study: Study, *hashes: str) -> Subject | None:
    hashes = tuple(h for h in hashes if h)
    if not hashes:
        return None
    link = SourceIdentifier.objects.filter(study=study, source_hash__in=hashes).select_related("subject")
    for found in link:
        return found.subject
    return None


# ------------------------------------------------------------------------------------ ingest


@dataclass
class StudyFacts:
    """What one DICOM study says about itself, gathered from its files or from QIDO-RS."""

    study_uid: str  # de-identified
    patient_hash: str = ""
    accession_hash: str = ""
    date: dt.date | None = None
    description: str = ""
    body_part: str = ""
    manufacturer: str = ""
    model_name: str = ""
    radiopharmaceutical: str = ""
    injected_dose_mbq: float | None = None
    modalities: set[str] = field(default_factory=set)
    # de-identified series uid -> attributes; instances -> set of de-identified SOP uids
    series: dict[str, dict] = field(default_factory=dict)
    instances: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # From QIDO-RS, where instances are counted by the archive rather than listed.
    reported_instances: int | None = None


def facts_from_headers(study: Study, headers: Iterable[Header]) -> dict[str, StudyFacts]:
    secret_uid = _uid_mapper(study)
    hash_of = _hash_mapper(study)
    found: dict[str, StudyFacts] = {}
    for h in headers:
        uid = secret_uid(h.study_uid)
        facts = found.get(uid)
        if facts is None:
            facts = found[uid] = StudyFacts(
                study_uid=uid,
                patient_hash=hash_of(h.patient_id),
                accession_hash=hash_of(h.accession),
                date=parse_da(h.study_date),
                description=h.study_description[:255],
            )
        facts.body_part = facts.body_part or h.body_part[:64]
        facts.manufacturer = facts.manufacturer or h.manufacturer[:128]
        facts.model_name = facts.model_name or h.model_name[:128]
        if h.radiopharmaceutical and not facts.radiopharmaceutical:
            facts.radiopharmaceutical = h.radiopharmaceutical[:128]
            facts.injected_dose_mbq = h.injected_dose_bq / 1e6 if h.injected_dose_bq is not None else None
        if h.modality:
            facts.modalities.add(h.modality[:16])
        series_uid = secret_uid(h.series_uid)
        if series_uid not in facts.series:
            facts.series[series_uid] = {
                "modality": h.modality[:16],
                "number": h.series_number,
                "description": h.series_description[:255],
                "body_part": h.body_part[:64],
                "manufacturer": h.manufacturer[:128],
                "model_name": h.model_name[:128],
            }
        facts.instances[series_uid].add(secret_uid(h.sop_uid))
    return found


def _uid_mapper(study: Study):
    cache: dict[str, str] = {}

    def remap(uid: str) -> str:
        if uid not in cache:
            cache[uid] = pseudonyms.remap_uid(study, uid)
        return cache[uid]

    return remap


def _hash_mapper(study: Study):
    def hash_of(value: str) -> str:
        return pseudonyms.source_hash(study, value) if value and value.strip() else ""

    return hash_of


@dataclass
class IngestReport:
    files: int = 0
    studies_new: int = 0
    series_new: int = 0
    instances_new: int = 0
    linked: int = 0
    queued: int = 0
    unreadable: list[dict] = field(default_factory=list)
    # Structured reports (TID 1500) among the files: capture/measurements/ingest.py's summary.
    measurements: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "studies_new": self.studies_new,
            "series_new": self.series_new,
            "instances_new": self.instances_new,
            "linked": self.linked,
            "queued": self.queued,
            "unreadable": self.unreadable,
        } | ({"measurements": self.measurements} if self.measurements else {})


def ingest_files(
    *,
    actor,
    study: Study,
    paths: list[str],
    source_kind: str,
    source: str,
    display_root: str = "",
    progress: Progress | None = None,
    processes: int | None = None,
) -> IngestReport:
    """Index the DICOM files `paths` (headers only) into `study`. Re-ingesting adds nothing."""
    from .dicomread import read_headers

    require(actor, study)
    if not paths:
        raise ValidationError(f"No files found in {source}; give a folder or zip that holds DICOM files.")
    report = IngestReport(files=len(paths))
    headers: list[Header] = []
    done = 0
    for chunk in read_headers(paths, processes=processes):
        for result in chunk:
            if isinstance(result, Failure):
                name = result.path
                if display_root and name.startswith(display_root):
                    name = name[len(display_root) :].lstrip("/")
                report.unreadable.append({"file": name, "reason": result.reason})
            else:
                headers.append(result)
        done += len(chunk)
        if progress:
            progress(done, len(paths), f"Read {done} of {len(paths)} headers")
    # Structured reports are measurements, not images: they go to capture/measurements (one ingest
    # path for both), after the images, so a report finds the imaging study it was read on.
    # Oldest first: measurements/ingest.py stores them in this order (a baseline before its follow-ups).
    reports = [
        h.path
        for h in sorted(headers, key=lambda h: (h.study_date or "9", h.path))
        if h.modality.upper() == "SR"
    ]
    found = facts_from_headers(study, [h for h in headers if h.modality.upper() != "SR"])
    if progress:
        progress(len(paths), len(paths), f"Saving {len(found)} studies")
    with transaction.atomic():
        save_facts(study, found.values(), source_kind, source, report)
        record_event(
            actor=actor,
            study=study,
            action=INGEST,
            object_type="imaging",
            object_id=source_kind,
            object_label=source[:255],
            after={k: v for k, v in report.as_dict().items() if k != "unreadable"}
            | {"unreadable": len(report.unreadable)},
        )
    if reports:
        from capture.measurements.ingest import ingest_reports  # measurements build on imaging

        outcome = ingest_reports(
            actor=actor, study=study, paths=reports, source_kind=source_kind, source=source,
            display_root=display_root, progress=progress, processes=processes,
        )  # fmt: skip
        report.measurements = outcome.as_dict()
        report.unreadable.extend(outcome.refused)
    return report


def save_facts(
    study: Study, all_facts: Iterable[StudyFacts], source_kind: str, source: str, report: IngestReport
) -> None:
    all_facts = list(all_facts)
    existing = {
        s.study_uid: s
        for s in ImagingStudy.objects.filter(
            study=study, study_uid__in=[f.study_uid for f in all_facts]
        ).select_related("subject")
    }
    for facts in all_facts:
        row = existing.get(facts.study_uid)
        if row is None:
            subject = subject_for_hashes(study, facts.patient_hash, facts.accession_hash)
            row = ImagingStudy.objects.create(
                study=study,
                subject=subject,
                study_uid=facts.study_uid,
                patient_hash=facts.patient_hash,
                accession_hash=facts.accession_hash,
                study_date=shifted(facts.date, subject),
                pending_date=None if subject else facts.date,
                description=facts.description,
                body_part=facts.body_part,
                manufacturer=facts.manufacturer,
                model_name=facts.model_name,
                radiopharmaceutical=facts.radiopharmaceutical,
                injected_dose_mbq=facts.injected_dose_mbq,
                source_kind=source_kind,
                source=source[:500],
            )
            report.studies_new += 1
            if subject:
                report.linked += 1
            else:
                report.queued += 1
        _save_series(row, facts, report)
        _refresh_counts(row, facts)


def _save_series(row: ImagingStudy, facts: StudyFacts, report: IngestReport) -> None:
    series = {s.series_uid: s for s in row.series.all()}
    new = [
        ImagingSeries(imaging_study=row, series_uid=uid, **attrs)
        for uid, attrs in facts.series.items()
        if uid not in series
    ]
    if new:
        ImagingSeries.objects.bulk_create(new)
        report.series_new += len(new)
        series = {s.series_uid: s for s in row.series.all()}
    if not facts.instances:
        # QIDO-RS: the archive counts the instances; keep its count.
        for uid, attrs in facts.series.items():
            count = attrs.get("instance_count")
            if count is not None and series[uid].instance_count < count:
                series[uid].instance_count = count
                series[uid].save(update_fields=["instance_count"])
        return
    known = set(
        ImagingInstance.objects.filter(series__imaging_study=row).values_list("series__series_uid", "sop_uid")
    )
    fresh = [
        ImagingInstance(series=series[series_uid], sop_uid=sop)
        for series_uid, sops in facts.instances.items()
        for sop in sops
        if (series_uid, sop) not in known
    ]
    ImagingInstance.objects.bulk_create(fresh, batch_size=500)
    report.instances_new += len(fresh)
    counts = dict(
        ImagingInstance.objects.filter(series__imaging_study=row)
        .values_list("series_id")
        .annotate(n=Count("id"))
        .values_list("series_id", "n")
    )
    for s in series.values():
        n = max(counts.get(s.pk, 0), s.instance_count)
        if n != s.instance_count:
            s.instance_count = n
            s.save(update_fields=["instance_count"])


def _refresh_counts(row: ImagingStudy, facts: StudyFacts) -> None:
    series = list(row.series.all())
    modalities = set(row.modality_list) | facts.modalities | {s.modality for s in series if s.modality}
    row.modalities = ",".join(sorted(modalities))[:128]
    row.series_count = len(series)
    row.instance_count = max(sum(s.instance_count for s in series), facts.reported_instances or 0)
    for name in ("description", "body_part", "manufacturer", "model_name", "radiopharmaceutical"):
        if not getattr(row, name) and getattr(facts, name):
            setattr(row, name, getattr(facts, name))
    if row.injected_dose_mbq is None and facts.injected_dose_mbq is not None:
        row.injected_dose_mbq = facts.injected_dose_mbq
    row.save()


# ------------------------------------------------------------------------------ linkage


@transaction.atomic
def add_identifier(*, actor, subject: Subject, kind: str, value: str) -> tuple[SourceIdentifier, int]:
    """Register a source identifier of `subject` (only its hash is kept) and link the queued
    studies that carry it. Returns the identifier row and how many studies it linked."""
    study = subject.study
    require(actor, study)
    access.get_subject(actor, study, subject.subject_id)  # 404 if the actor may not see the subject
    if kind not in dict(SourceIdentifier.KINDS):
        raise ValidationError(
            f"Unknown identifier kind {kind!r}; use one of {', '.join(dict(SourceIdentifier.KINDS))}."
        )
    try:
        digest = pseudonyms.source_hash(study, value)
    except ValueError:
        raise ValidationError("Enter the identifier (it is hashed at once and never stored).") from None
    row = SourceIdentifier.objects.filter(study=study, source_hash=digest).select_related("subject").first()
    if row is not None and row.subject_id != subject.pk:
        raise ValidationError(
            "This identifier is already linked to another subject of the study. If that link is wrong, "
            "ask a study administrator to correct it before linking it here."
        )
    if row is None:
        row = SourceIdentifier.objects.create(study=study, subject=subject, kind=kind, source_hash=digest)
        record_event(
            actor=actor,
            study=study,
            action=IDENTIFIER,
            object_type="subject",
            object_id=subject.pk,
            object_label=subject.subject_id,
            after={"kind": kind, "hash": digest[:12]},
        )
    linked = link_queued(actor, subject, digest)
    return row, linked


def link_queued(actor, subject: Subject, digest: str) -> int:
    from django.db.models import Q

    queued = (
        ImagingStudy.objects.select_for_update()
        .filter(Q(patient_hash=digest) | Q(accession_hash=digest), study=subject.study, subject__isnull=True)
        .order_by("pk")
    )
    count = 0
    for row in queued:
        _assign(actor, row, subject, reason="matched a registered identifier")
        count += 1
    from capture.measurements.queue import link_queued_reports  # measurements build on imaging

    link_queued_reports(actor, subject, digest)
    return count


def _assign(actor, row: ImagingStudy, subject: Subject, reason: str) -> None:
    row.subject = subject
    row.study_date = shifted(row.pending_date, subject)
    row.pending_date = None
    row.assigned_at = timezone.now()
    row.assigned_by = user_or_none(actor)
    row.save(update_fields=["subject", "study_date", "pending_date", "assigned_at", "assigned_by"])
    record_event(
        actor=actor,
        study=row.study,
        action=ASSIGN,
        object_type="imaging_study",
        object_id=row.pk,
        object_label=row.study_uid,
        before={"subject": None},
        after={"subject": subject.subject_id, "modalities": row.modalities},
        reason=reason,
    )


@transaction.atomic
def assign_study(*, actor, imaging_study: ImagingStudy, subject: Subject, reason: str = "") -> int:
    """A data manager assigns a queued study to a subject. The study's PatientID hash then names
    that subject, so the patient's other queued and future studies link by themselves.
    Returns how many studies were assigned (this one and the patient's other queued ones)."""
    study = imaging_study.study
    require(actor, study)
    if subject.study_id != study.pk:
        raise ValidationError("The subject belongs to another study.")
    access.get_subject(actor, study, subject.subject_id)
    row = ImagingStudy.objects.select_for_update().get(pk=imaging_study.pk)
    if row.subject_id is not None:
        raise ValidationError(
            f"This imaging study is already assigned to {row.subject}; it is no longer in the queue."
        )
    _assign(actor, row, subject, reason=reason or "assigned from the imaging queue")
    count = 1
    for digest, kind in ((row.patient_hash, SourceIdentifier.PATIENT_ID),):
        if not digest:
            continue
        owner = SourceIdentifier.objects.filter(study=study, source_hash=digest).first()
        if owner is None:
            SourceIdentifier.objects.create(study=study, subject=subject, kind=kind, source_hash=digest)
            record_event(
                actor=actor,
                study=study,
                action=IDENTIFIER,
                object_type="subject",
                object_id=subject.pk,
                object_label=subject.subject_id,
                after={"kind": kind, "hash": digest[:12]},
                reason="learned from an assigned imaging study",
            )
        if owner is None or owner.subject_id == subject.pk:
            count += link_queued(actor, subject, digest)
    return count


def visible_studies(user, study: Study):
    """Imaging studies of subjects the user sees. The unassigned queue is not among them."""
    return ImagingStudy.objects.filter(
        study=study, subject__in=access.subjects_visible_to(user, study)
    ).select_related("subject")


def queue(user, study: Study):
    require(user, study)
    return ImagingStudy.objects.unassigned().filter(study=study).order_by("created_at", "pk")


# ------------------------------------------------------------------------------ quarantine


def quarantine(user, study: Study):
    """Images held back from de-identified copies (pixels to review), of subjects the user sees."""
    require(user, study)
    return (
        QuarantinedInstance.objects.filter(study=study, subject__in=access.subjects_visible_to(user, study))
        .select_related("subject", "decided_by")
        .order_by("created_at", "pk")
    )


@transaction.atomic
def decide_quarantine(*, actor, item: QuarantinedInstance, release: bool, reason: str) -> QuarantinedInstance:
    """A data manager releases a quarantined image (its pixels show no identifying text: the next
    de-identification run writes it) or rejects it (it is never shared). Audited, with the reason."""
    study = item.study
    require(actor, study)
    access.get_subject(actor, study, item.subject.subject_id)  # 404 if the actor may not see it
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            'Say what you checked, e.g. "pixels checked, no burned-in text" (or why it must not be shared).'
        )
    row = QuarantinedInstance.objects.select_for_update().get(pk=item.pk)
    if row.status != QuarantinedInstance.PENDING:
        raise ValidationError(f"This image was already {row.status}; it is no longer waiting for review.")
    row.status = QuarantinedInstance.RELEASED if release else QuarantinedInstance.REJECTED
    row.decided_at = timezone.now()
    row.decided_by = user_or_none(actor)
    row.decision_reason = reason[:500]
    row.save(update_fields=["status", "decided_at", "decided_by", "decision_reason"])
    record_event(
        actor=actor,
        study=study,
        action=RELEASE if release else REJECT,
        object_type="imaging_instance",
        object_id=row.pk,
        object_label=row.sop_uid,
        before={"status": QuarantinedInstance.PENDING},
        after={"status": row.status, "subject": row.subject.subject_id, "modality": row.modality},
        reason=row.decision_reason,
    )
    return row
