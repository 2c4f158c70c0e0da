"""The measurement queue: reports whose subject could not be found wait here for a data manager.

Access is the imaging queue's: who may link images (`import_data`, data managers and study
administrators) sees the queue of their study and assigns from it, to a subject they see.
Assigning a report also teaches Capture its PatientID hash (as assigning an imaging study does),
so the patient's other queued reports and imaging studies follow, and so do later ones.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from capture.audit.services import record_event
from capture.imaging import services as imaging
from capture.imaging.models import SourceIdentifier
from capture.studies import access
from capture.studies.models import Study, Subject

from . import store
from .ingest import finish_pending_copy, recompute
from .models import MeasurementReport


def queue(user, study: Study):
    """The study's unassigned reports, oldest first (the actor must be allowed to link data)."""
    imaging.require(user, study)
    return MeasurementReport.objects.filter(study=study, subject__isnull=True).order_by("created_at", "pk")


def visible_reports(user, study: Study):
    """Assigned reports of the subjects the user sees."""
    return MeasurementReport.objects.filter(
        study=study, subject__in=access.subjects_visible_to(user, study)
    ).select_related("subject")


def assign(*, actor, report: MeasurementReport, subject: Subject, reason: str = "") -> int:
    """A data manager names the subject of a queued report. Returns how many reports were
    assigned (this one and the same patient's other queued ones)."""
    study = report.study
    imaging.require(actor, study)
    if subject.study_id != study.pk:
        raise ValidationError("The subject belongs to another study.")
    access.get_subject(actor, study, subject.subject_id)  # 404 for a subject the actor may not see
    with transaction.atomic():
        _assign_one(actor, report, subject, reason or "assigned from the measurement queue")
        count = 1
        digest = report.patient_hash
        if digest:
            owner = SourceIdentifier.objects.filter(study=study, source_hash=digest).first()
            if owner is None:
                SourceIdentifier.objects.create(
                    study=study, subject=subject, kind=SourceIdentifier.PATIENT_ID, source_hash=digest
                )
                record_event(
                    actor=actor,
                    study=study,
                    action=imaging.IDENTIFIER,
                    object_type="subject",
                    object_id=subject.pk,
                    object_label=subject.subject_id,
                    after={"kind": SourceIdentifier.PATIENT_ID, "hash": digest[:12]},
                    reason="learned from an assigned measurement report",
                )
            if owner is None or owner.subject_id == subject.pk:
                before = _queued(study, digest).count()
                imaging.link_queued(actor, subject, digest)  # images, and (below) the other reports
                count += before - _queued(study, digest).count()
    recompute([subject])
    return count


def _queued(study: Study, digest: str):
    return MeasurementReport.objects.filter(study=study, subject__isnull=True, patient_hash=digest)


def _assign_one(actor, report: MeasurementReport, subject: Subject, reason: str) -> None:
    row = store.assign_report(actor=actor, report=report, subject=subject, reason=reason)
    finish_pending_copy(row, subject)


def link_queued_reports(actor, subject: Subject, digest: str) -> int:
    """Queued reports carrying `digest` go to `subject` (called when the hash becomes the subject's:
    an identifier registered, an imaging study or a report assigned)."""
    rows = list(_queued(subject.study, digest).order_by("pk"))
    for row in rows:
        _assign_one(actor, row, subject, "matched a registered identifier")
    if rows:
        transaction.on_commit(lambda: recompute([subject]))
    return len(rows)
