"""Shapes of the REST API's requests and responses (and of its OpenAPI schema)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from capture.definitions.models import Arm, DataElement, Event, FormDefinition, PermissibleValue
from capture.jobs.models import Job
from capture.records.models import FormRecord
from capture.studies.disclosure import Disclosure
from capture.studies.models import Site, Study, Subject


def policy_of(context) -> Disclosure:
    """The reader's disclosure policy, put in the context by the view; without one, the
    de-identified world (a serializer used without its view must not show more)."""
    return context.get("disclosure") or Disclosure(study_id=0, identified=False)


class StudySerializer(serializers.ModelSerializer):
    schedule = serializers.CharField(source="schedule.ref", read_only=True)
    role = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = [
            "slug",
            "name",
            "description",
            "schedule",
            "subject_id_pattern",
            "missing_codes",
            "role",
            "permissions",
        ]

    def get_role(self, study) -> str | None:
        from capture.studies.access import role_of

        return role_of(self.context["request"].user, study)

    def get_permissions(self, study) -> list[str]:
        from capture.studies.access import can
        from capture.studies.models import STUDY_PERMISSIONS

        user = self.context["request"].user
        return [code for code, _ in STUDY_PERMISSIONS if can(user, code, study)]


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["code", "name"]


class SubjectSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    arm = serializers.CharField(source="arm.name", read_only=True)
    derived_from = serializers.CharField(source="derived_from.subject_id", read_only=True, default=None)
    enrollment_date = serializers.SerializerMethodField()

    class Meta:
        model = Subject
        fields = ["subject_id", "site", "arm", "kind", "derived_from", "model_type", "enrollment_date"]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_enrollment_date(self, subject) -> str:
        # De-identified readers get the shifted date, like every other date they see.
        return policy_of(self.context).enrollment_date(subject).isoformat()


class EnrolSerializer(serializers.Serializer):
    subject_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="The subject's id in a study that keeps its source's ids (a migrated REDCap project's "
        "record id); leave it out where the study's pattern gives ids.",
    )
    site = serializers.CharField(help_text="Site code, e.g. 'A'.")
    enrollment_date = serializers.DateField()
    kind = serializers.ChoiceField(choices=Subject.KINDS, default=Subject.PATIENT)
    arm = serializers.CharField(required=False, help_text="Arm name; default: the first arm for the kind.")
    derived_from = serializers.CharField(required=False, help_text="Subject id of the source patient.")
    model_type = serializers.CharField(required=False, default="", allow_blank=True)
    reason = serializers.CharField(required=False, default="", allow_blank=True)


class PermissibleValueSerializer(serializers.ModelSerializer):
    class Meta:
        model = PermissibleValue
        fields = ["code", "meaning", "concept_code"]


class DataElementSerializer(serializers.ModelSerializer):
    permissible_values = PermissibleValueSerializer(many=True, read_only=True)

    class Meta:
        model = DataElement
        fields = [
            "ref",
            "public_id",
            "version",
            "name",
            "long_name",
            "question",
            "definition",
            "datatype",
            "max_length",
            "min_value",
            "max_value",
            "decimal_places",
            "unit",
            "identifier",
            "source",
            "permissible_values",
        ]


class FormSerializer(serializers.ModelSerializer):
    class Meta:
        model = FormDefinition
        fields = ["ref", "name", "version", "title", "description", "spec"]


class EventFormSerializer(serializers.Serializer):
    form = serializers.CharField(source="form.ref")
    form_name = serializers.CharField(source="form.name")
    repeating = serializers.BooleanField()


class EventSerializer(serializers.ModelSerializer):
    forms = EventFormSerializer(source="event_forms", many=True, read_only=True)

    class Meta:
        model = Event
        fields = ["name", "title", "day", "window_before", "window_after", "forms"]


class ArmSerializer(serializers.ModelSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta:
        model = Arm
        fields = ["name", "title", "subject_kind", "events"]


class ScheduleSerializer(serializers.Serializer):
    ref = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    arms = ArmSerializer(many=True, read_only=True)


class RecordSerializer(serializers.ModelSerializer):
    subject = serializers.CharField(source="subject.subject_id", read_only=True)
    event = serializers.CharField(source="event.name", read_only=True)
    form = serializers.CharField(source="form.ref", read_only=True)
    data = serializers.SerializerMethodField()  # type: ignore[assignment]  # DRF declares fields as class attributes
    created_at = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()
    updated_by = serializers.CharField(source="updated_by.username", read_only=True, default=None)

    class Meta:
        model = FormRecord
        fields = [
            "subject",
            "event",
            "form_name",
            "form",
            "instance",
            "status",
            "version",
            "locked",
            "data",
            "created_at",
            "updated_at",
            "updated_by",
        ]

    def get_data(self, record) -> dict:
        from .catalog import form_fields

        policy = policy_of(self.context)
        if policy.identified:
            return record.data
        fields = form_fields(record.form, self.context.setdefault("_fields", {}))  # type: ignore[attr-defined]  # the context is the dict DRF passes
        return policy.record_data(record.subject, {f.name: f for f in fields}, record.data)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_created_at(self, record) -> str:
        return _datetime(policy_of(self.context).timestamp(record.subject, record.created_at))

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_updated_at(self, record) -> str:
        return _datetime(policy_of(self.context).timestamp(record.subject, record.updated_at))


def _datetime(value):
    return serializers.DateTimeField().to_representation(value) if value is not None else None


class RecordWriteSerializer(serializers.Serializer):
    values = serializers.DictField(help_text="The whole record: item name → value (see docs/api.md).")
    status = serializers.ChoiceField(choices=[0, 1, 2], default=0)
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The version you read (omit or null for a new record); a newer one answers 409.",
    )
    reason = serializers.CharField(required=False, default="", allow_blank=True)


class RecordDeleteSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        help_text="Why the record goes; kept in the audit trail.",
    )


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    current = RecordSerializer()
    submitted = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.CharField(), required=False)  # type: ignore[assignment]  # DRF declares fields as class attributes


class AuditEventSerializer(serializers.Serializer):
    """An audit event as the reader may see it (`capture.audit.shown.ShownEvent`): for a
    de-identified reader, values and timestamp through the disclosure policy, no hash."""

    seq = serializers.IntegerField(source="event.seq")
    timestamp = serializers.DateTimeField(
        allow_null=True,
        help_text="Shifted with the subject's dates, or null (withheld), for de-identified readers.",
    )
    actor_label = serializers.CharField(source="event.actor_label")
    action = serializers.CharField(source="event.action")
    object_type = serializers.CharField(source="event.object_type")
    object_id = serializers.CharField(source="event.object_id")
    object_label = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    reason = serializers.CharField(source="event.reason")
    hash = serializers.CharField(allow_null=True, help_text="Null for de-identified readers.")


class JobSerializer(serializers.ModelSerializer):
    study = serializers.CharField(source="study.slug", read_only=True)
    # Times of no subject: withheld (null) from de-identified readers, as the disclosure policy says.
    created_at = serializers.SerializerMethodField()
    started_at = serializers.SerializerMethodField()
    finished_at = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "study",
            "kind",
            "title",
            "status",
            "done",
            "total",
            "percent",
            "message",
            "error",
            "result",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def _time(self, job, value):
        policy = Disclosure.for_user(self.context["request"].user, job.study)
        return _datetime(policy.timestamp(None, value))

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_created_at(self, job) -> str | None:
        return self._time(job, job.created_at)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_started_at(self, job) -> str | None:
        return self._time(job, job.started_at)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_finished_at(self, job) -> str | None:
        return self._time(job, job.finished_at)
