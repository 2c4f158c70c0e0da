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
