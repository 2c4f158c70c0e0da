"""A saved report of a study. Its field and event names are REDCap's (capture/api/redcap/project.py),
so the same report answers the web table and REDCap's `content=report&report_id=<pk>`."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from capture.studies.models import Study


class Report(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reports")
    name = models.CharField(max_length=200)
    # REDCap field names (an item, a checkbox column `<item>___<code>`, or `<form>_complete`), in order.
    fields = models.JSONField(default=list)
    events = models.JSONField(default=list, blank=True)  # unique event names; empty: every event
    filter_logic = models.TextField(blank=True)
    sort_field = models.CharField(max_length=200, blank=True)  # one of `fields` or the record id
    sort_descending = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="report_name_unique_in_study")]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict:
        """What the audit records of the report (before and after a change)."""
        return {
            "name": self.name,
            "fields": list(self.fields),
            "events": list(self.events),
            "filter_logic": self.filter_logic,
            "sort_field": self.sort_field,
            "sort_descending": self.sort_descending,
        }
