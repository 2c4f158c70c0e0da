"""One FormRecord per subject × event × form × instance, its values as JSON.

Written only through `capture.records.services.save_record`, which validates,
checks the version (optimistic locking) and audits.
"""

from django.conf import settings
from django.db import models


class Status(models.IntegerChoices):
    # REDCap's 0/1/2, so imports and the REDCap API map one to one.
    INCOMPLETE = 0, "Incomplete"
    UNVERIFIED = 1, "Unverified"
    COMPLETE = 2, "Complete"


class FormRecord(models.Model):
    subject = models.ForeignKey("studies.Subject", on_delete=models.PROTECT, related_name="records")
    event = models.ForeignKey("definitions.Event", on_delete=models.PROTECT, related_name="records")
    form = models.ForeignKey("definitions.FormDefinition", on_delete=models.PROTECT, related_name="records")
    # The form's name without version: a record stays one record across form versions.
    form_name = models.CharField(max_length=64)
    instance = models.PositiveIntegerField(default=1)
    status = models.PositiveSmallIntegerField(choices=Status.choices, default=Status.INCOMPLETE)
    version = models.PositiveIntegerField(default=1)
    data = models.JSONField(default=dict)
    locked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "event", "form_name", "instance"], name="record_unique_subject_event_form"
            )
        ]
        ordering = ["subject", "event", "form_name", "instance"]

    def __str__(self) -> str:
        return f"{self.subject} / {self.event.name} / {self.form_name} #{self.instance}"


class SubjectLock(models.Model):
    """A whole subject locked by a data manager: none of its records may change, and no new
    record may be created, until it is unlocked. Individual record locks stay as they are."""

    subject = models.OneToOneField("studies.Subject", on_delete=models.CASCADE, related_name="lock")
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    locked_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField()
    # The records this lock set `locked` on (those not locked already), so that unlocking the
    # subject gives back exactly those. Setting the flag on each record is what makes every
    # path that checks `FormRecord.locked` (API delete, bulk import) respect a subject lock.
    record_ids = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{self.subject} locked"


class Signature(models.Model):
    """A PI's e-signature of one version of a record. A later change makes it stale, not invalid:
    the page says which version was signed."""

    record = models.ForeignKey(FormRecord, on_delete=models.CASCADE, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField(auto_now_add=True)
    record_version = models.PositiveIntegerField()
    meaning = models.CharField(max_length=255)

    class Meta:
        ordering = ["-signed_at"]

    def __str__(self) -> str:
        return f"{self.record} signed by {self.signer} (v{self.record_version})"

    @property
    def current(self) -> bool:
        return self.record_version == self.record.version


class Query(models.Model):
    """A data clarification on one field of a record: open → answered → closed (or back to open)."""

    OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
    STATUSES = [(OPEN, "Open"), (ANSWERED, "Answered"), (CLOSED, "Closed")]

    record = models.ForeignKey(FormRecord, on_delete=models.PROTECT, related_name="queries")
    # The item name, or "group[row].item" for a field of a repeating group.
    field = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["record", "status"])]

    def __str__(self) -> str:
        return f"Query on {self.record} · {self.field} ({self.status})"


class QueryMessage(models.Model):
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    # What the message did: opened, answered, reopened, closed.
    action = models.CharField(max_length=16)
    text = models.TextField()

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} by {self.author}"
