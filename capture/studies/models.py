"""Studies, their sites and subjects, and who may do what in them.

Permissions are django-guardian object permissions on Study, granted in
bundles by role (roles.py); a membership's sites limit which subjects its user
sees. Decisions are made in access.py, nowhere else.
"""

import re
import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# Object permissions on a Study. Roles (roles.py) are bundles of these; if you
# add one here, place it in the role table and the permission tests too.
STUDY_PERMISSIONS = [
    ("view_study_data", "View the study's subjects and form records"),
    ("enroll_subject", "Enrol subjects"),
    ("enter_data", "Enter and change form data"),
    ("view_identifiers", "See identifying items"),
    ("verify_data", "Mark records verified and raise queries"),
    ("lock_records", "Lock and unlock records"),
    ("sign_records", "Sign records electronically (the investigator's attestation)"),
    ("import_data", "Import spreadsheets"),
    ("export_deidentified", "Export de-identified datasets"),
    ("export_identified", "Export identified datasets"),
    ("view_audit", "Read the study's audit trail"),
    ("manage_study", "Manage sites, members and settings"),
]

SUBJECT_ID_FIELDS = {"site", "seq", "study"}
DEFAULT_MISSING_CODES = [
    {"code": "NA", "meaning": "Not applicable"},
    {"code": "UNK", "meaning": "Unknown"},
    {"code": "ND", "meaning": "Not done"},
    {"code": "NASK", "meaning": "Not asked"},
]


def validate_id_pattern(pattern: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name}
        pattern.format(site="S", seq=1, study="X")
    except (ValueError, KeyError, IndexError) as exc:
        raise ValidationError(f"Subject id pattern {pattern!r} is not valid: {exc}") from None
    if "seq" not in fields:
        raise ValidationError("The subject id pattern needs {seq} (for example '{site}-{seq:04d}').")
    unknown = fields - SUBJECT_ID_FIELDS
    if unknown:
        raise ValidationError(f"Unknown field(s) in the subject id pattern: {', '.join(sorted(unknown))}.")


def validate_site_code(value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9]+", value):
        raise ValidationError("A site code is letters and digits only (it becomes part of subject ids).")


def default_missing_codes():
    return [dict(c) for c in DEFAULT_MISSING_CODES]


class Study(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    schedule = models.ForeignKey("definitions.Schedule", on_delete=models.PROTECT, related_name="studies")
    subject_id_pattern = models.CharField(
        max_length=64,
        default="{site}-{seq:04d}",
        validators=[validate_id_pattern],
        help_text="Fields: {site} (site code), {study} (study slug), {seq} (sequence within the site).",
    )
    missing_codes = models.JSONField(default=default_missing_codes, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = STUDY_PERMISSIONS  # type: ignore[assignment]  # a list of (str, str) is what Django reads
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name

    def missing_code_set(self) -> set[str]:
        return {c["code"] for c in self.missing_codes}


class Site(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sites")
    code = models.CharField(max_length=16, validators=[validate_site_code])
    name = models.CharField(max_length=255)
    # A retired site takes no new subjects or members; its subjects and history stay.
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "code"]
        constraints = [models.UniqueConstraint(fields=["study", "code"], name="site_unique_code")]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class SubjectQuerySet(models.QuerySet):
    def patients(self):
        return self.filter(kind=Subject.PATIENT)


class Subject(models.Model):
    PATIENT = "patient"
    ANIMAL = "animal"
    KINDS = [(PATIENT, "Patient"), (ANIMAL, "Animal model")]

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="subjects")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="subjects")
    arm = models.ForeignKey("definitions.Arm", on_delete=models.PROTECT, related_name="subjects")
    subject_id = models.CharField(
        max_length=64, help_text="The de-identified subject id used everywhere in the study."
    )
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=KINDS)
    derived_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="derived_models",
        help_text="For an animal model (PDX): the patient it was derived from.",
    )
    model_type = models.CharField(
        max_length=32, blank=True, help_text="PDX, GEMM, syngeneic, cell-line xenograft"
    )
    enrollment_date = models.DateField()
    # One shift per subject, applied to clinical dates and DICOM dates alike so intervals stay true.
    date_shift_days = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SubjectQuerySet.as_manager()

    class Meta:
        ordering = ["study", "subject_id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "subject_id"], name="subject_unique_subject_id"),
            models.UniqueConstraint(fields=["site", "seq"], name="subject_unique_site_seq"),
        ]

    def __str__(self) -> str:
        return self.subject_id


class Membership(models.Model):
    """A user's role in a study, and the sites whose subjects they see."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32)
    all_sites = models.BooleanField(default=False)
    sites = models.ManyToManyField(Site, blank=True, related_name="members")
    # A suspended member keeps the row (and their history) but holds no permission on the study.
    suspended_at = models.DateTimeField(null=True, blank=True)
    # What this member's API tokens may do in the study, on top of the role (capture/administration).
    api_export = models.BooleanField(default=True, help_text="API tokens may export records.")
    api_import = models.BooleanField(default=True, help_text="API tokens may import records.")
    api_expires = models.DateField(null=True, blank=True, help_text="API rights end after this day.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "study"], name="membership_unique")]
        ordering = ["study", "user"]

    def __str__(self) -> str:
        return f"{self.user} — {self.role} in {self.study}"


class KeyFingerprint(models.Model):
    """The fingerprint of a secret this database's data was made under (capture/studies/pseudonyms.py):
    an HMAC of a constant under the key, never the key. A process with another key stops."""

    name = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
