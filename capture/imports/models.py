"""Saved column mappings and uploaded files awaiting a dry run or commit."""

import uuid

from django.conf import settings
from django.db import models


class ImportMapping(models.Model):
    """A named mapping of a study (the JSON of `capture.imports.mapping.Mapping`), remembered
    per site so the next file from that site starts from it."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="import_mappings")
    site = models.ForeignKey(
        "studies.Site", null=True, blank=True, on_delete=models.SET_NULL, related_name="import_mappings"
    )
    name = models.CharField(max_length=100)
    spec = models.JSONField(default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["study", "name"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="importmapping_unique_name")]

    def __str__(self) -> str:
        return self.name


class ImportUpload(models.Model):
    """One uploaded file: kept in the uploads storage (capture/storage.py) until imported, with its
    last report."""

    UPLOADED = "uploaded"
    CHECKED = "checked"
    COMMITTED = "committed"
    STATES = [(UPLOADED, "Uploaded"), (CHECKED, "Dry run done"), (COMMITTED, "Imported")]
    RECORDS = "records"
    MEASUREMENTS = "measurements"
    KINDS = [(RECORDS, "Form records"), (MEASUREMENTS, "Imaging measurements")]

    # Random: upload URLs must not be guessable.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="import_uploads")
    site = models.ForeignKey(
        "studies.Site", null=True, blank=True, on_delete=models.SET_NULL, related_name="import_uploads"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    original_name = models.CharField(max_length=255)
    path = models.CharField(
        max_length=500, help_text="the file's name in the uploads storage (capture/storage.py UPLOADS)"
    )
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    mapping = models.ForeignKey(
        ImportMapping, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads"
    )
    spec = models.JSONField(default=dict, blank=True, help_text="the mapping as last used for this file")
    state = models.CharField(max_length=16, choices=STATES, default=UPLOADED)
    # What the file holds: form records (mapped to form items) or a measurement sheet
    # (capture/imports/measurement_sheet.py); its `spec` is that kind's mapping.
    kind = models.CharField(max_length=16, choices=KINDS, default=RECORDS)
    report = models.JSONField(default=dict, blank=True)
    # What the mapping page shows of the file (headers, samples, row count, read problems), read
    # once per set of reader options: capture.imports.facts. {} until first read.
    facts = models.JSONField(default=dict, blank=True, help_text="the file as the mapping page shows it")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name
