"""A file uploaded into a file field of a form record.

The record stores only a reference (`StoredFile.reference`, "file:<hex id>"); the content sits in
the named storage "capture_files" (settings.STORAGES), reached only through Django's storage API,
so a deployment may put it on object storage. A file taken off its record (replaced or deleted)
keeps its row and content: the audit trail's before/after values name it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

PREFIX = "file:"


class StoredFile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="+")
    subject = models.ForeignKey("studies.Subject", on_delete=models.PROTECT, related_name="+")
    # The name as uploaded (made safe for a header), its type as decided on upload, and size.
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Where the content is, as the storage named it (not a path: the storage may be remote).
    storage_name = models.CharField(max_length=500)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"

    @property
    def reference(self) -> str:
        """The value a record stores for this file."""
        return PREFIX + self.id.hex


def file_id(reference) -> uuid.UUID | None:
    """The id in a stored reference, or None when `reference` is not one (a blank, a missing-data
    code, a name typed as text)."""
    if not isinstance(reference, str) or not reference.startswith(PREFIX):
        return None
    try:
        return uuid.UUID(hex=reference[len(PREFIX) :])
    except ValueError:
        return None
