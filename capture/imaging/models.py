"""Imaging studies indexed from DICOM headers, linked to subjects by keyed hashes.

Capture never stores pixel data nor raw identifiers of images: a study keeps its de-identified
StudyInstanceUID (`pseudonyms.remap_uid`), source hashes of PatientID and accession number
(`pseudonyms.source_hash`), and its date moved by the subject's shift. The images stay in the
archive (`source`).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models


class SourceIdentifier(models.Model):
    """A source identifier (DICOM PatientID, MRN, accession) of a subject, kept only as its hash."""

    PATIENT_ID = "patient_id"
    MRN = "mrn"
    ACCESSION = "accession"
    KINDS = [(PATIENT_ID, "DICOM PatientID"), (MRN, "Medical record number"), (ACCESSION, "Accession number")]

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="source_identifiers")
    subject = models.ForeignKey(
        "studies.Subject", on_delete=models.CASCADE, related_name="source_identifiers"
    )
    kind = models.CharField(max_length=16, choices=KINDS)
    source_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "subject_id", "kind"]
        # One hash names one subject: a PatientID cannot belong to two subjects of a study.
        constraints = [
            models.UniqueConstraint(fields=["study", "source_hash"], name="imaging_source_hash_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.subject_id}"


class ImagingStudyQuerySet(models.QuerySet):
    def unassigned(self):
        return self.filter(subject__isnull=True)


class ImagingStudy(models.Model):
    FOLDER = "folder"
    UPLOAD = "upload"
    DICOMWEB = "dicomweb"
    SOURCE_KINDS = [(FOLDER, "Folder"), (UPLOAD, "Zip upload"), (DICOMWEB, "DICOMweb")]

    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="imaging_studies")
    # Empty while the study waits in the queue for a data manager to assign it.
    subject = models.ForeignKey(
        "studies.Subject", null=True, blank=True, on_delete=models.PROTECT, related_name="imaging_studies"
    )
    study_uid = models.CharField(max_length=64, help_text="De-identified StudyInstanceUID")
    patient_hash = models.CharField(max_length=64, blank=True)
    accession_hash = models.CharField(max_length=64, blank=True)
    modalities = models.CharField(max_length=128, blank=True, help_text="comma-separated, e.g. CT,PT")
    # Shifted by the subject's date shift. While unassigned, the shift is unknown: the acquisition
    # date waits in `pending_date` (seen only by data managers) and moves here at assignment.
    study_date = models.DateField(null=True, blank=True)
    pending_date = models.DateField(null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    series_count = models.PositiveIntegerField(default=0)
    instance_count = models.PositiveIntegerField(default=0)
    manufacturer = models.CharField(max_length=128, blank=True)
    model_name = models.CharField(max_length=128, blank=True)
    radiopharmaceutical = models.CharField(max_length=128, blank=True)
    injected_dose_mbq = models.FloatField(null=True, blank=True)
    source_kind = models.CharField(max_length=16, choices=SOURCE_KINDS)
    source = models.CharField(max_length=500, help_text="folder, upload name or DICOMweb URL")
    created_at = models.DateTimeField(auto_now_add=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = ImagingStudyQuerySet.as_manager()

    class Meta:
        # Columns, not relations: ordering through the nullable subject would join it, and
        # PostgreSQL refuses SELECT … FOR UPDATE on the nullable side of an outer join.
        ordering = ["study_id", "subject_id", "study_date", "study_uid"]
        verbose_name_plural = "imaging studies"
        constraints = [
            models.UniqueConstraint(fields=["study", "study_uid"], name="imaging_study_uid_unique")
        ]

    def __str__(self) -> str:
        return f"{self.modalities or 'Imaging'} {self.study_date or ''} ({self.study_uid[-12:]})"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split(",") if m]

    def real_date(self) -> dt.date | None:
        """The acquisition date on the clinical calendar (for roles that see identifiers)."""
        if self.subject is None:
            return self.pending_date
        if self.study_date is None:
            return None
        return self.study_date - dt.timedelta(days=self.subject.date_shift_days)

    def day_offset(self) -> int | None:
        """Days from the subject's enrolment: the same on the real and the shifted calendar."""
        date = self.real_date()
        if date is None or self.subject is None:
            return None
        return (date - self.subject.enrollment_date).days


class ImagingSeries(models.Model):
    imaging_study = models.ForeignKey(ImagingStudy, on_delete=models.CASCADE, related_name="series")
    series_uid = models.CharField(max_length=64, help_text="De-identified SeriesInstanceUID")
    modality = models.CharField(max_length=16, blank=True)
    number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    manufacturer = models.CharField(max_length=128, blank=True)
    model_name = models.CharField(max_length=128, blank=True)
    instance_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["imaging_study", "number", "series_uid"]
        verbose_name_plural = "imaging series"
        constraints = [
            models.UniqueConstraint(fields=["imaging_study", "series_uid"], name="imaging_series_uid_unique")
        ]

    def __str__(self) -> str:
        return f"{self.modality} #{self.number} {self.description}".strip()


class ImagingInstance(models.Model):
    """One indexed file (by de-identified SOPInstanceUID): what makes re-ingesting add nothing."""

    series = models.ForeignKey(ImagingSeries, on_delete=models.CASCADE, related_name="instances")
    sop_uid = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "sop_uid"], name="imaging_instance_uid_unique")
        ]

    def __str__(self) -> str:
        return self.sop_uid


class QuarantinedInstance(models.Model):
    """A source image kept out of de-identified copies because its pixels may show identifying
    text (`deid.burned_in_risk`), until a person with `import_data` has looked at them and
    released it (copies are then written with BurnedInAnnotation NO) or rejected it for good.
    The decision holds for these pixels only (`pixel_hash`): a changed image waits again."""

    PENDING = "pending"
    RELEASED = "released"
    REJECTED = "rejected"
    STATUSES = [(PENDING, "Waiting for review"), (RELEASED, "Released"), (REJECTED, "Rejected")]

    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="quarantined_images")
    subject = models.ForeignKey("studies.Subject", on_delete=models.PROTECT, related_name="+")
    sop_uid = models.CharField(max_length=64, help_text="De-identified SOPInstanceUID")
    pixel_hash = models.CharField(max_length=64, help_text="SHA-256 of the pixel data reviewed")
    modality = models.CharField(max_length=16, blank=True)
    sop_class = models.CharField(max_length=64, blank=True)
    why = models.CharField(max_length=255)
    # Where the file was found: source paths often carry names, so only the identified world sees it.
    source_file = models.CharField(max_length=1000)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["study_id", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "sop_uid"], name="imaging_quarantine_uid_unique")
        ]

    def __str__(self) -> str:
        return f"{self.modality or 'Image'} {self.sop_uid[-12:]} ({self.status})"


class PublishedInstance(models.Model):
    """One de-identified instance for a research archive (a DICOMweb server, by STOW-RS): its copy
    in the images storage, and whether it reached the archive. One row per destination and
    de-identified SOP Instance UID, so a re-run finds what was sent already (publish.py)."""

    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"
    STATUSES = [(PENDING, "Waiting"), (PUBLISHED, "In the archive"), (FAILED, "Failed, to be sent again")]

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="published_instances")
    subject = models.ForeignKey(
        "studies.Subject", on_delete=models.CASCADE, related_name="published_instances"
    )
    destination = models.CharField(max_length=64, help_text="a server name of CAPTURE_DICOMWEB_SERVERS")
    study_uid = models.CharField(max_length=64, help_text="De-identified StudyInstanceUID")
    series_uid = models.CharField(max_length=64, help_text="De-identified SeriesInstanceUID")
    sop_uid = models.CharField(max_length=64, help_text="De-identified SOPInstanceUID")
    storage_name = models.CharField(max_length=500, help_text="name in the images storage")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["study_id", "study_uid", "series_uid", "sop_uid"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "destination", "sop_uid"], name="imaging_published_instance_unique"
            )
        ]
        indexes = [models.Index(fields=["study", "destination", "status"])]

    def __str__(self) -> str:
        return f"{self.sop_uid} → {self.destination} ({self.status})"
