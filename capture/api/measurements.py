"""REST API of imaging measurements and responses (issue 17): read-only lists per study and subject.

Like every list of the API: the study needs `view_study_data` (404 without access), a token
needs the member's API right, and only the subjects at the reader's sites appear (a subject at
another site answers 404). Values go through the reader's disclosure policy: dates of a
de-identified reader are on the subject's shifted calendar (the stored one: report dates are kept
shifted), a reader label (DICOM person text) is withheld from them, UIDs are the de-identified ones.
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers

from capture.measurements.models import BestResponse, Measurement, TimepointResponse
from capture.studies import access

from .serializers import policy_of
from .views import _StudyScoped

FILTERS = [
    OpenApiParameter("subject", str, description="Subject id"),
    OpenApiParameter("event", str, description="Event name (the window that holds the date)"),
    OpenApiParameter("site", str, description="Site code"),
]


class MeasurementSerializer(serializers.ModelSerializer):
    subject_id = serializers.CharField(source="report.subject.subject_id")
    site = serializers.CharField(source="report.subject.site.code")
    event = serializers.CharField(source="report.event")
    day = serializers.IntegerField(source="report.day_offset", allow_null=True)
    date = serializers.SerializerMethodField()
    lesion_id = serializers.CharField(source="lesion.tracking_id")
    lesion_uid = serializers.CharField(source="lesion.tracking_uid")
    lesion_role = serializers.CharField(source="lesion.role")
    lymph_node = serializers.BooleanField(source="lesion.is_node")
    finding = serializers.SerializerMethodField()
    finding_site = serializers.SerializerMethodField()
    measurement = serializers.CharField(source="concept_meaning")
    source_kind = serializers.CharField(source="report.source_kind")
    source_uid = serializers.CharField(source="report.sop_uid")
    series_uid = serializers.CharField(source="referenced_series_uid")
    reader = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = Measurement
        fields = [
            "subject_id",
            "site",
            "event",
            "day",
            "date",
            "lesion_id",
            "lesion_uid",
            "lesion_role",
            "lymph_node",
            "finding",
            "finding_site",
            "measurement",
            "derivation",
            "concept_scheme",
            "concept_code",
            "value",
            "unit",
            "source_kind",
            "source_uid",
            "series_uid",
            "reader",
            "current",
        ]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_date(self, m) -> str | None:
        date = policy_of(self.context).date(m.report.subject, m.report.real_date())
        return date.isoformat() if date else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_finding(self, m) -> dict | None:
        lesion = m.lesion
        return _coded(lesion.finding_scheme, lesion.finding_code, lesion.finding_meaning)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_finding_site(self, m) -> dict | None:
        lesion = m.lesion
        return _coded(lesion.site_scheme, lesion.site_code, lesion.site_meaning)

    def get_reader(self, m) -> str:
        return policy_of(self.context).dicom_text(m.report.observer)

    def get_current(self, m) -> bool:
        return not hasattr(m.report, "superseded_by")


def _coded(scheme: str, code: str, meaning: str) -> dict | None:
    if not (code or meaning):
        return None
    return {"scheme": scheme, "code": code, "meaning": meaning}


class TimepointResponseSerializer(serializers.ModelSerializer):
    subject_id = serializers.CharField(source="subject.subject_id")
    site = serializers.CharField(source="subject.site.code")
    date = serializers.SerializerMethodField()
    source_uid = serializers.CharField(source="report.sop_uid", default=None)

    class Meta:
        model = TimepointResponse
        fields = [
            "subject_id",
            "site",
            "method",
            "event",
            "day",
            "date",
            "is_baseline",
            "sum_mm",
            "nadir_mm",
            "change_from_baseline_pct",
            "change_from_nadir_pct",
            "target",
            "non_target",
            "new_lesions",
            "overall",
            "source_uid",
        ]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_date(self, r) -> str:
        real = r.subject.enrollment_date + dt.timedelta(days=r.day)
        return policy_of(self.context).date(r.subject, real).isoformat()


class BestResponseSerializer(serializers.ModelSerializer):
    subject_id = serializers.CharField(source="subject.subject_id")
    site = serializers.CharField(source="subject.site.code")

    class Meta:
        model = BestResponse
        fields = [
            "subject_id",
            "site",
            "method",
            "response",
            "confirmed",
            "best_response_pct",
            "best_average_response_pct",
        ]


class _SubjectFiltered(_StudyScoped):
    """The visible subjects of the study, narrowed to the URL's subject (404 if not visible) and
    to ?subject= and ?site=."""

    subject_path = "subject"  # the model's path to the subject

    def subjects(self):
        request = self.request
        subjects = access.subjects_visible_to(request.user, self.study())
        subject_id = self.kwargs.get("subject_id")
        if subject_id:
            subjects = subjects.filter(pk=access.get_subject(request.user, self.study(), subject_id).pk)
        params = request.query_params
        if params.get("subject"):
            subjects = subjects.filter(subject_id=params["subject"])
        if params.get("site"):
            subjects = subjects.filter(site__code=params["site"])
        return subjects

    def filtered(self, qs, event_field: str):
        qs = qs.filter(**{f"{self.subject_path}__in": self.subjects()})
        event = self.request.query_params.get("event")  # type: ignore[attr-defined]
        return qs.filter(**{event_field: event}) if event else qs


class MeasurementList(_SubjectFiltered, generics.ListAPIView):
    """Measured values of lesions (DICOM SR and sheets) of the subjects you see; filter with
    ?subject=, ?event=, ?site=. Ordered by subject, report date, lesion."""

    serializer_class = MeasurementSerializer
    subject_path = "report__subject"

    @extend_schema(parameters=FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = Measurement.objects.select_related(
            "report__subject__site", "report__superseded_by", "lesion"
        ).filter(report__study=self.study())
        qs = self.filtered(qs, "report__event")
        return qs.order_by(
            "report__subject__subject_id", "report__report_date", "report_id", "lesion__tracking_id", "id"
        )


class TimepointResponseList(_SubjectFiltered, generics.ListAPIView):
    """Responses per timepoint (RECIST 1.1, mRECIST) of the subjects you see; filter with
    ?subject=, ?event=, ?site=, ?method=."""

    serializer_class = TimepointResponseSerializer

    @extend_schema(parameters=[*FILTERS, OpenApiParameter("method", str, description="recist11 or mrecist")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = self.filtered(
            TimepointResponse.objects.select_related("subject__site", "report").filter(study=self.study()),
            "event",
        )
        method = self.request.query_params.get("method")
        if method:
            qs = qs.filter(method=method)
        return qs.order_by("subject__subject_id", "method", "day")


class BestResponseList(_SubjectFiltered, generics.ListAPIView):
    """Best overall response per subject and method, of the subjects you see; filter with
    ?subject=, ?site=."""

    serializer_class = BestResponseSerializer

    @extend_schema(parameters=[FILTERS[0], FILTERS[2]])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = BestResponse.objects.select_related("subject__site").filter(study=self.study())
        return qs.filter(subject__in=self.subjects()).order_by("subject__subject_id", "method")
