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
    # No index of its own: the unique (subject, event, form_name, instance) begins with it and
    # answers every query by subject (records/migrations/0004).
    subject = models.ForeignKey(
        "studies.Subject", on_delete=models.PROTECT, related_name="records", db_index=False
    )
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
    # No index (records/migrations/0004): no query asks by it; only deleting a user would (SET_NULL).
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
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


class Verification(models.Model):
    """A monitor's source data verification of a whole form (`field` "") or of one field.

    Rows are never deleted: a later change of a verified value sets `cleared_at` and says why,
    so the page shows what was verified and what changed since; the audit keeps both events."""

    record = models.ForeignKey(FormRecord, on_delete=models.CASCADE, related_name="verifications")
    # "" for the whole form, else an item name.
    field = models.CharField(max_length=100, blank=True)
    record_version = models.PositiveIntegerField()
    # The verified values (of the form, or of the field), to tell what a change changed.
    values = models.JSONField(default=dict)
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verified_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Why it was cleared, in words ("weight changed from 70 to 72 in version 3").
    cleared_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-verified_at", "-pk"]
        indexes = [models.Index(fields=["record", "cleared_at"])]

    def __str__(self) -> str:
        what = self.field or "form"
        return f"{self.record} · {what} verified (v{self.record_version})"

    @property
    def active(self) -> bool:
        return self.cleared_at is None


class Query(models.Model):
    """A data clarification on one field of a record: open → answered → closed (or back to open).

    What each role may do in each state is the table TRANSITIONS, and nothing else: the record
    service refuses any other move, and pages show only the allowed buttons. No state offers
    Answer, Close and Reopen together, so a data manager (who may both answer and close) never
    sees all three at once. If you add a state or an action, add its row to the hand-written
    table in tests/monitoring/test_query_workflow.py."""

    OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
    STATUSES = [(OPEN, "Open"), (ANSWERED, "Answered"), (CLOSED, "Closed")]
    ANSWER, CLOSE, REOPEN = "answer", "close", "reopen"
    # (state, action) -> (the permission it needs, the state it leads to).
    TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
        (OPEN, ANSWER): ("enter_data", ANSWERED),
        (OPEN, CLOSE): ("verify_data", CLOSED),
        (ANSWERED, CLOSE): ("verify_data", CLOSED),
        (ANSWERED, REOPEN): ("verify_data", OPEN),
        (CLOSED, REOPEN): ("verify_data", OPEN),
    }
    # Who must act next, by state (the study query list's column).
    NEXT_ACTOR = {OPEN: "Site", ANSWERED: "Monitor", CLOSED: "—"}

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

    def actions_for(self, can) -> list[str]:
        """The actions a user with `can(permission) -> bool` may take now, in button order."""
        return [
            action
            for (state, action), (permission, _) in self.TRANSITIONS.items()
            if state == self.status and can(permission)
        ]

    @property
    def who_must_act(self) -> str:
        return self.NEXT_ACTOR[self.status]


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
