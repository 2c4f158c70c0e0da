"""Data quality: rules written on the web, the discrepancies a run finds, and each run.

Rules that come with the definitions live in their form's spec (`data_quality:` in the form's
YAML); the built-in checks are code (rules.py). A discrepancy is one (record, rule, field); a
run keeps what it finds again (with its exclusion or query) and drops what it no longer finds.
"""

from django.conf import settings
from django.db import models


class QualityRule(models.Model):
    """A custom rule a data manager wrote on the web: true where the data are wrong."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="quality_rules")
    name = models.SlugField(max_length=64)
    title = models.CharField(max_length=255)
    form_name = models.CharField(max_length=64, help_text="the form whose records the rule reads")
    expression = models.TextField()
    field = models.CharField(max_length=100, blank=True, help_text="the item a discrepancy links to")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["form_name", "name"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="quality_rule_unique_name")]

    def __str__(self) -> str:
        return f"{self.name}: {self.expression}"


class Discrepancy(models.Model):
    """One thing a run found wrong in one field of one record."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="discrepancies")
    record = models.ForeignKey("records.FormRecord", on_delete=models.CASCADE, related_name="discrepancies")
    # A built-in check's kind (rules.KINDS) or "rule:<name>" for a custom rule.
    rule = models.CharField(max_length=80)
    field = models.CharField(max_length=100, blank=True)
    message = models.TextField()
    found_at = models.DateTimeField(auto_now_add=True)
    excluded = models.BooleanField(default=False)
    excluded_reason = models.TextField(blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    excluded_at = models.DateTimeField(null=True, blank=True)
    query = models.ForeignKey(
        "records.Query", null=True, blank=True, on_delete=models.SET_NULL, related_name="discrepancies"
    )

    class Meta:
        ordering = ["record_id", "rule", "field"]
        constraints = [
            models.UniqueConstraint(fields=["record", "rule", "field"], name="discrepancy_unique_finding")
        ]
        indexes = [models.Index(fields=["study", "excluded"])]

    def __str__(self) -> str:
        return f"{self.rule} · {self.field}: {self.message}"


class QualityRun(models.Model):
    """One run of every rule over a study (on demand, or the nightly command)."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="quality_runs")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    records = models.PositiveIntegerField(default=0)
    found = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Data quality run of {self.study} at {self.started_at:%Y-%m-%d %H:%M}"
