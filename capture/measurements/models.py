"""Quantitative imaging results: measurement reports, tracked lesions, measurements, responses.

Values are never edited in place. A report (a DICOM SR of template TID 1500, or one row group of a
measurement sheet) is written once; a correction is a new report that names the one it supersedes,
and only the newest report of a chain counts. Lesions are identified per subject by their tracking
UID or, without one, by their tracking identifier (the lesion id). Responses are computed from the
current measurements and stored so timelines, exports and data quality rules read them cheaply;
they are recomputed whenever a report or a designation of the subject changes.

Dates follow the imaging rule (capture/imaging/models.py): `report_date` is on the subject's
shifted calendar; while a report waits in the linkage queue its acquisition date is held in
`pending_date` (seen only by data managers) and moves to `report_date` at assignment.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models


class MeasurementReport(models.Model):
    SR = "sr"
    SHEET = "sheet"
    SOURCE_KINDS = [(SR, "DICOM SR (TID 1500)"), (SHEET, "Measurement sheet")]

    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="measurement_reports")
    # Empty while the report waits in the linkage queue.
    subject = models.ForeignKey(
        "studies.Subject", null=True, blank=True, on_delete=models.PROTECT, related_name="measurement_reports"
    )
    imaging_study = models.ForeignKey(
        "imaging.ImagingStudy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="measurement_reports",
        help_text="the linked imaging study the report's measurements were read on",
    )
    source_kind = models.CharField(max_length=16, choices=SOURCE_KINDS)
    source = models.CharField(max_length=500, help_text="folder, upload name, DICOMweb URL or sheet name")
    sop_uid = models.CharField(
        max_length=128, help_text="De-identified SOPInstanceUID of the SR; for a sheet, sheet:<upload>:<key>"
    )
    series_uid = models.CharField(max_length=64, blank=True, help_text="De-identified SeriesInstanceUID")
    study_uid = models.CharField(max_length=64, blank=True, help_text="De-identified StudyInstanceUID")
    patient_hash = models.CharField(max_length=64, blank=True, help_text="keyed hash used for linkage")
    observer = models.CharField(
        max_length=128, blank=True, help_text="de-identified observer (a reader label, never a name)"
    )
    report_date = models.DateField(null=True, blank=True)
    pending_date = models.DateField(null=True, blank=True)
    event = models.CharField(
        max_length=64, blank=True, help_text="the schedule event whose window holds the report's date"
    )
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    storage_name = models.CharField(
        max_length=500, blank=True, help_text="de-identified copy in the images storage"
    )
    # While queued there is no subject to own lesions: the values wait here (store.py's
    # MeasuredValue as JSON) and become Lesion/Measurement rows at assignment.
    pending_values = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["study_id", "subject_id", "report_date", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "sop_uid"], name="measurement_report_uid_unique")
        ]
        indexes = [models.Index(fields=["study", "subject", "report_date"], name="mreport_subject_date")]

    def __str__(self) -> str:
        return f"{self.get_source_kind_display()} {self.report_date or ''} ({self.sop_uid[-12:]})"

    def real_date(self) -> dt.date | None:
        """The report's date on the clinical calendar (for roles that see identifiers)."""
        if self.subject is None:
            return self.pending_date
        if self.report_date is None:
            return None
        return self.report_date - dt.timedelta(days=self.subject.date_shift_days)

    def day_offset(self) -> int | None:
        """Days from the subject's enrolment: the same on the real and the shifted calendar."""
        date = self.real_date()
        if date is None or self.subject is None:
            return None
        return (date - self.subject.enrollment_date).days


class Lesion(models.Model):
    UNDESIGNATED = "undesignated"
    TARGET = "target"
    NON_TARGET = "non_target"
    NEW = "new"
    ROLES = [
        (UNDESIGNATED, "Not designated"),
        (TARGET, "Target"),
        (NON_TARGET, "Non-target"),
        (NEW, "New lesion"),
    ]

    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="lesions")
    subject = models.ForeignKey("studies.Subject", on_delete=models.PROTECT, related_name="lesions")
    tracking_id = models.CharField(max_length=64, help_text="the lesion id (TID 1500 tracking identifier)")
    tracking_uid = models.CharField(
        max_length=64, blank=True, help_text="TID 1500 tracking unique identifier"
    )
    finding_code = models.CharField(max_length=64, blank=True)
    finding_scheme = models.CharField(max_length=16, blank=True)
    finding_meaning = models.CharField(max_length=255, blank=True)
    site_code = models.CharField(max_length=64, blank=True)
    site_scheme = models.CharField(max_length=16, blank=True)
    site_meaning = models.CharField(max_length=255, blank=True)
    is_node = models.BooleanField(default=False, help_text="a lymph node: measured on its short axis")
    role = models.CharField(max_length=16, choices=ROLES, default=UNDESIGNATED)
    first_report = models.ForeignKey(
        MeasurementReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    designated_at = models.DateTimeField(null=True, blank=True)
    designated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["subject_id", "tracking_id"]
        constraints = [
            models.UniqueConstraint(fields=["subject", "tracking_id"], name="lesion_tracking_id_unique"),
            models.UniqueConstraint(
                fields=["subject", "tracking_uid"],
                condition=~models.Q(tracking_uid=""),
                name="lesion_tracking_uid_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tracking_id} ({self.get_role_display()})"


class Measurement(models.Model):
    """One value of one lesion in one report: long axis, short axis, volume, SUVmax, ..."""

    report = models.ForeignKey(MeasurementReport, on_delete=models.CASCADE, related_name="measurements")
    lesion = models.ForeignKey(Lesion, on_delete=models.PROTECT, related_name="measurements")
    concept_code = models.CharField(max_length=64)
    concept_scheme = models.CharField(max_length=16)
    concept_meaning = models.CharField(max_length=255)
    value = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=32, help_text="UCUM code")
    derivation = models.CharField(max_length=64, blank=True, help_text="e.g. Maximum (SUVmax)")
    referenced_series_uid = models.CharField(
        max_length=64, blank=True, help_text="De-identified SeriesInstanceUID"
    )

    class Meta:
        ordering = ["report_id", "lesion_id", "concept_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "lesion", "concept_scheme", "concept_code", "derivation"],
                name="measurement_unique_per_report",
            )
        ]

    def __str__(self) -> str:
        return f"{self.concept_meaning} {self.value} {self.unit}"


class TimepointResponse(models.Model):
    """A computed response of one subject at one timepoint (RECIST 1.1 or mRECIST)."""

    RECIST = "recist11"
    MRECIST = "mrecist"
    METHODS = [(RECIST, "RECIST 1.1"), (MRECIST, "mRECIST (PDX)")]

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="timepoint_responses")
    subject = models.ForeignKey(
        "studies.Subject", on_delete=models.CASCADE, related_name="timepoint_responses"
    )
    report = models.ForeignKey(
        MeasurementReport, null=True, blank=True, on_delete=models.CASCADE, related_name="responses"
    )
    method = models.CharField(max_length=16, choices=METHODS)
    event = models.CharField(max_length=64, blank=True)
    day = models.IntegerField(help_text="days from enrolment")
    is_baseline = models.BooleanField(default=False)
    sum_mm = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    nadir_mm = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    change_from_baseline_pct = models.FloatField(null=True, blank=True)
    change_from_nadir_pct = models.FloatField(null=True, blank=True)
    # 16: "NON-CR/NON-PD" (13 characters) is a non-target and an overall response.
    target = models.CharField(max_length=16, blank=True)
    non_target = models.CharField(max_length=16, blank=True)
    new_lesions = models.BooleanField(default=False)
    overall = models.CharField(max_length=16, blank=True, help_text="blank at baseline")
    volume_mm3 = models.DecimalField(
        max_digits=20, decimal_places=3, null=True, blank=True, help_text="mRECIST: the tumour volume"
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subject_id", "method", "day"]
        constraints = [
            models.UniqueConstraint(fields=["subject", "method", "day"], name="timepoint_response_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} day {self.day}: {self.overall}"


class BestResponse(models.Model):
    """A subject's best overall response under the study's confirmation rule (or mRECIST category)."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="best_responses")
    subject = models.ForeignKey("studies.Subject", on_delete=models.CASCADE, related_name="best_responses")
    method = models.CharField(max_length=16, choices=TimepointResponse.METHODS)
    response = models.CharField(max_length=16)
    confirmed = models.BooleanField(default=False, help_text="the confirmation rule was applied")
    best_response_pct = models.FloatField(null=True, blank=True, help_text="mRECIST BestResponse")
    best_average_response_pct = models.FloatField(null=True, blank=True, help_text="mRECIST BestAvgResponse")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subject_id", "method"]
        constraints = [models.UniqueConstraint(fields=["subject", "method"], name="best_response_unique")]

    def __str__(self) -> str:
        return f"{self.get_method_display()}: {self.response}"


class LesionStatus(models.Model):
    """A reader's assessment of one non-target (or new) lesion in one report (RECIST 1.1 section
    4.3.2: absent, present, unequivocal progression, not evaluated). Written once: a correction is
    a newer row of the same lesion and report, and the newest counts (capture/measurements/
    designation.py `assess_lesion` audits each). Without one, the status follows the lesion's
    measurements in the report (compute.py)."""

    STATUSES = [
        ("absent", "Absent (a node: normal size)"),
        ("present", "Present"),
        ("progression", "Unequivocal progression"),
        ("not_evaluated", "Not evaluated"),
    ]

    lesion = models.ForeignKey(Lesion, on_delete=models.CASCADE, related_name="statuses")
    report = models.ForeignKey(MeasurementReport, on_delete=models.CASCADE, related_name="lesion_statuses")
    status = models.CharField(max_length=16, choices=STATUSES)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["lesion_id", "report_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.lesion_id} in {self.report_id}: {self.status}"


class ResponseRule(models.Model):
    """A study's response settings (edited on the study's Settings page, audited): the confirmation
    rule of best overall response (RECIST 1.1 section 4.4.2) and the form item where readers enter
    their overall response (compared with the computed one by monitoring/response_check.py).
    A study without a row uses the defaults: no confirmation, SD at least 42 days after baseline."""

    study = models.OneToOneField("studies.Study", on_delete=models.CASCADE, related_name="response_rule")
    confirm = models.BooleanField(
        default=False, help_text="a CR or PR counts only when confirmed by a later assessment"
    )
    confirm_min_days = models.PositiveIntegerField(
        default=28, help_text="days from a CR or PR to the assessment that confirms it"
    )
    sd_min_days = models.PositiveIntegerField(
        default=42, help_text="days from baseline before stable disease counts as the best response"
    )
    response_item = models.CharField(
        max_length=100,
        default="overall_response",
        blank=True,
        help_text="the item of the study's forms that holds a reader's overall response (blank: none)",
    )

    def __str__(self) -> str:
        return f"Response rule of {self.study_id}"
