"""Data elements, forms and schedules as loaded from definition files.

A version, once records use it, never changes (the loader refuses); a changed
definition loads as a new version beside the old one. `spec` keeps the
validated definition as JSON (what the loader hashed); the columns beside it are
what queries and pages need.
"""

from django.db import models


class DataElement(models.Model):
    public_id = models.CharField(max_length=64)
    version = models.CharField(max_length=16)
    name = models.CharField(max_length=64)
    long_name = models.CharField(max_length=255)
    question = models.TextField()
    definition = models.TextField(blank=True)
    datatype = models.CharField(max_length=16)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    min_value = models.CharField(max_length=64, blank=True)
    max_value = models.CharField(max_length=64, blank=True)
    decimal_places = models.PositiveSmallIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=64, blank=True)
    identifier = models.BooleanField(default=False)
    source = models.TextField(blank=True)
    spec = models.JSONField()
    content_hash = models.CharField(max_length=64)
    source_file = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id", "version"], name="element_unique_id_version")
        ]
        ordering = ["public_id", "version"]

    def __str__(self) -> str:
        return f"{self.long_name} ({self.ref})"

    @property
    def ref(self) -> str:
        return f"{self.public_id}@{self.version}"


class PermissibleValue(models.Model):
    element = models.ForeignKey(DataElement, on_delete=models.CASCADE, related_name="permissible_values")
    order = models.PositiveIntegerField()
    code = models.CharField(max_length=255)
    meaning = models.TextField()
    concept_code = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["element", "order"]
        constraints = [models.UniqueConstraint(fields=["element", "code"], name="pv_unique_code")]

    def __str__(self) -> str:
        return f"{self.code} = {self.meaning}"


class FormDefinition(models.Model):
    name = models.CharField(max_length=64)
    version = models.CharField(max_length=16)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    # The validated form with each item's element resolved to its ref; see loader.compile_form.
    spec = models.JSONField()
    content_hash = models.CharField(max_length=64)
    elements = models.ManyToManyField(DataElement, related_name="forms")
    source_file = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="form_unique_name_version")]
        ordering = ["name", "version"]

    def __str__(self) -> str:
        return f"{self.title} ({self.ref})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def items(self) -> list[dict]:
        """Every item of the form, flattened, each with its section and group."""
        return [item for section in self.spec["sections"] for item in _walk(section)]


def _walk(section: dict):
    for entry in section["items"]:
        if "group" in entry:
            for item in entry["items"]:
                yield {
                    **item,
                    "section": section["title"],
                    "group": entry["group"],
                    "repeating": entry["repeating"],
                }
        else:
            yield {**entry, "section": section["title"], "group": None, "repeating": False}


class Schedule(models.Model):
    name = models.CharField(max_length=64)
    version = models.CharField(max_length=16)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    spec = models.JSONField()
    content_hash = models.CharField(max_length=64)
    source_file = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="schedule_unique_name_version")
        ]
        ordering = ["name", "version"]

    def __str__(self) -> str:
        return f"{self.title} ({self.name}@{self.version})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Arm(models.Model):
    SUBJECT_KINDS = [("patient", "Patient"), ("animal", "Animal model")]

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=64)
    title = models.CharField(max_length=255)
    subject_kind = models.CharField(max_length=16, choices=SUBJECT_KINDS)
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["schedule", "order"]
        constraints = [models.UniqueConstraint(fields=["schedule", "name"], name="arm_unique_name")]

    def __str__(self) -> str:
        return self.title


class Event(models.Model):
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=64)
    title = models.CharField(max_length=255)
    day = models.IntegerField(default=0)
    window_before = models.PositiveIntegerField(default=0)
    window_after = models.PositiveIntegerField(default=0)
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["arm", "order"]
        constraints = [models.UniqueConstraint(fields=["arm", "name"], name="event_unique_name")]

    def __str__(self) -> str:
        return self.title


class EventForm(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="event_forms")
    form = models.ForeignKey(FormDefinition, on_delete=models.PROTECT, related_name="event_forms")
    repeating = models.BooleanField(default=False)
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["event", "order"]
        constraints = [models.UniqueConstraint(fields=["event", "form"], name="eventform_unique")]

    def __str__(self) -> str:
        return f"{self.event.name}: {self.form.ref}"
