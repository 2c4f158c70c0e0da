"""A Job is one piece of background work a user asked for (an import, an export, a DICOM
ingest): what to run, its progress, its outcome and any file it produced."""

import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STATUSES = [(QUEUED, "Queued"), (RUNNING, "Running"), (SUCCEEDED, "Done"), (FAILED, "Failed")]

    # A random id: job URLs must not let one user guess another's jobs.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=32)
    title = models.CharField(max_length=255)
    # Dotted path of the function that does the work (see services.start_job for what is allowed).
    handler = models.CharField(max_length=255)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    # A name in the "results" storage (capture/storage.py); rows written when it was a path under
    # MEDIA_ROOT read the same, since the local storage is rooted there.
    result_file = models.CharField(max_length=500, blank=True, help_text="name in the results storage")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["study", "kind", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.SUCCEEDED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.status in (self.SUCCEEDED, self.FAILED)
