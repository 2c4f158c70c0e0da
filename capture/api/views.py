"""The REST API (`/api/v1/`): thin views over the studies, definitions, records, audit and job services.

Every view first asks `capture.studies.access` (404 for what the user may not see, 403 for
what their role may not do) and filters every list through it. DRF's own permission classes
only require an authenticated user here: they check nothing per object on GET.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from capture.audit.models import AuditEvent
from capture.audit.services import chain_key
from capture.audit.shown import shown_events
from capture.definitions.models import Arm, DataElement, FormDefinition
from capture.jobs import services as jobs
from capture.records import services as records
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies import services as studies
from capture.studies.disclosure import Disclosure
from capture.studies.models import Study, Subject

from . import serializers as s
from .catalog import deidentified_for
from .parsers import PARSERS


def _study(request, slug: str, codename: str = access.VIEW) -> Study:
    study = access.get_study(request.user, slug, codename)
    if getattr(request, "auth", None) is not None:  # a token, not a session: the member's API rights apply
        access.require_api(request.user, study, write=request.method not in ("GET", "HEAD", "OPTIONS"))
    return study


class StudyList(generics.ListAPIView):
    """The studies you have a role in."""

    serializer_class = s.StudySerializer

    def get_queryset(self):
        return access.studies_visible_to(self.request.user).select_related("schedule").order_by("slug")


class StudyDetail(generics.RetrieveAPIView):
    serializer_class = s.StudySerializer

    def get_object(self):
        return _study(self.request, self.kwargs["slug"])


class SiteList(generics.ListAPIView):
    """The study's sites whose subjects you see."""

    serializer_class = s.SiteSerializer

    def get_queryset(self):
        study = _study(self.request, self.kwargs["slug"])
        return access.sites_visible_to(self.request.user, study).order_by("code")


class _StudyScoped:
    """Resolves the study once per request and says whether the reader gets de-identified data."""

    def study(self) -> Study:
        if not hasattr(self, "_study_obj"):
            self._study_obj = _study(self.request, self.kwargs["slug"])  # type: ignore[attr-defined]  # a mixin of APIView, which has request and kwargs
        return self._study_obj

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if "slug" in self.kwargs and self.request.user.is_authenticated:
            context["disclosure"] = Disclosure.for_user(self.request.user, self.study())
        return context


class SubjectList(_StudyScoped, generics.ListCreateAPIView):
    """Subjects at the sites you see. POST enrols one (needs `enroll_subject` at that site): with
    the `subject_id` given in a study that keeps its source's ids, with the pattern's next id
    otherwise."""

    serializer_class = s.SubjectSerializer
    parser_classes = PARSERS

    def get_queryset(self):
        qs = access.subjects_visible_to(self.request.user, self.study()).select_related(
            "site", "arm", "derived_from"
        )
        site = self.request.query_params.get("site")
        if site:
            qs = qs.filter(site__code=site)
        return qs.order_by("subject_id")

    @extend_schema(request=s.EnrolSerializer, responses={201: s.SubjectSerializer, 400: s.ErrorSerializer})
    def post(self, request, slug):
        study = _study(request, slug, "enroll_subject")
        form = s.EnrolSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        site = access.sites_visible_to(request.user, study).filter(code=data["site"]).first()
        if site is None:
            return Response(
                {"detail": f"No site {data['site']!r} you may enrol at; see GET sites/ for yours."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        arm = None
        if data.get("arm"):
            arm = Arm.objects.filter(schedule=study.schedule, name=data["arm"]).first()
            if arm is None:
                return Response(
                    {"detail": f"No arm {data['arm']!r} in the study's schedule; see GET schedule/."},
                    status=status.HTTP_400_BAD_REQUEST,
                )
        derived_from = None
        if data.get("derived_from"):
            derived_from = access.get_subject(request.user, study, data["derived_from"])
        subject_id = _enrolment_id(study, data.get("subject_id"))
        try:
            subject = studies.enroll_subject(
                actor=request.user,
                study=study,
                site=site,
                enrollment_date=data["enrollment_date"],
                kind=data["kind"],
                arm=arm,
                derived_from=derived_from,
                model_type=data.get("model_type", ""),
                reason=data.get("reason", ""),
                subject_id=subject_id,
            )
        except ValidationError:
            if subject_id is not None and Subject.objects.filter(study=study, subject_id=subject_id).exists():
                # Taken, perhaps at a site this user does not see: say no more than that.
                raise ValidationError(
                    f"Subject {subject_id!r} cannot be enrolled: the id is taken (perhaps at a site you do not see)."
                ) from None
            raise
        return Response(
            s.SubjectSerializer(subject, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )


def _enrolment_id(study: Study, given: str | None) -> str | None:
    """The id a new subject gets from the request: required where the study keeps its source's
    ids, refused where its pattern gives them."""
    if study.keeps_source_ids and not (given or "").strip():
        raise ValidationError(
            "This study keeps its source's subject ids: give the new subject's subject_id "
            "(e.g. its REDCap record id)."
        )
    if not study.keeps_source_ids and given is not None:
        raise ValidationError(
            f"This study gives subject ids by its pattern ({study.subject_id_pattern}): leave subject_id out."
        )
    return given.strip() if given is not None else None


class SubjectDetail(_StudyScoped, generics.RetrieveAPIView):
    serializer_class = s.SubjectSerializer

    def get_object(self):
        return access.get_subject(self.request.user, self.study(), self.kwargs["subject_id"])


def _records_of(user, study):
    return FormRecord.objects.filter(subject__in=access.subjects_visible_to(user, study)).select_related(
        "subject", "event", "form", "updated_by"
    )


class RecordList(_StudyScoped, generics.ListAPIView):
    """Form records of the subjects you see; filter with ?subject=, ?event=, ?form=."""

    serializer_class = s.RecordSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("subject", str, description="Subject id"),
            OpenApiParameter("event", str, description="Event name"),
            OpenApiParameter("form", str, description="Form name (without version)"),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = _records_of(self.request.user, self.study())
        if "subject_id" in self.kwargs:
            subject = access.get_subject(self.request.user, self.study(), self.kwargs["subject_id"])
            qs = qs.filter(subject=subject)
        params = self.request.query_params
        if params.get("subject"):
            qs = qs.filter(subject__subject_id=params["subject"])
        if params.get("event"):
            qs = qs.filter(event__name=params["event"])
        if params.get("form"):
            qs = qs.filter(form_name=params["form"])
        return qs.order_by(
            "subject__subject_id", "event__arm__order", "event__order", "form_name", "instance"
        )


class RecordDetail(_StudyScoped, generics.GenericAPIView):
    """One form record. PUT writes the whole record through the record service; DELETE removes it.

    Send the `version` you read; if someone saved in between, the answer is 409 with both
    the current record and what you sent, and nothing is written."""

    serializer_class = s.RecordSerializer
    parser_classes = PARSERS

    def _subject(self, codename=access.VIEW) -> Subject:
        return access.get_subject(self.request.user, self.study(), self.kwargs["subject_id"], codename)

    @extend_schema(responses={200: s.RecordSerializer})
    def get(self, request, slug, subject_id, event, form, instance):
        subject = self._subject()
        record = (
            FormRecord.objects.select_related("subject", "event", "form", "updated_by")
            .filter(subject=subject, event__name=event, form_name=form, instance=instance)
            .first()
        )
        if record is None:
            raise Http404("No such record.")
        return Response(s.RecordSerializer(record, context=self.get_serializer_context()).data)

    @extend_schema(
        request=s.RecordWriteSerializer,
        responses={
            200: s.RecordSerializer,
            201: s.RecordSerializer,
            400: s.ErrorSerializer,
            409: s.ConflictSerializer,
            423: s.ErrorSerializer,
        },
    )
    def put(self, request, slug, subject_id, event, form, instance):
        subject = self._subject("enter_data")
        if deidentified_for(request.user, subject.study):
            raise PermissionDenied("Your role sees de-identified data only, so it cannot write records.")
        body = s.RecordWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # What was sent, for the 409 answer (capture.api.exceptions) should someone have saved in between.
        self.submitted = {"values": data["values"], "status": data["status"], "version": data["version"]}
        record = records.save_record(
            actor=request.user,
            subject=subject,
            event_name=event,
            form_name=form,
            values=data["values"],
            status=data["status"],
            instance=instance,
            expected_version=data["version"],
            reason=data["reason"],
        )
        created = record.version == 1 and data["version"] is None
        return Response(
            s.RecordSerializer(record, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=s.RecordDeleteSerializer,
        responses={204: None, 400: s.ErrorSerializer, 403: s.ErrorSerializer, 423: s.ErrorSerializer},
    )
    def delete(self, request, slug, subject_id, event, form, instance):
        """Delete the record through the record service: study administrators only, with a
        reason; a locked or signed record, or one with queries, is refused."""
        subject = self._subject()
        if deidentified_for(request.user, subject.study):
            raise PermissionDenied("Your role sees de-identified data only, so it cannot delete records.")
        record = FormRecord.objects.filter(
            subject=subject, event__name=event, form_name=form, instance=instance
        ).first()
        if record is None:
            raise Http404("No such record.")
        body = s.RecordDeleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        records.delete_record(actor=request.user, record=record, reason=body.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleDetail(APIView):
    """The study's schedule: arms, events, and the forms at each event."""

    @extend_schema(responses={200: s.ScheduleSerializer})
    def get(self, request, slug):
        study = _study(request, slug)
        schedule = study.schedule
        arms = Arm.objects.filter(schedule=schedule).prefetch_related("events__event_forms__form")
        payload = {
            "ref": schedule.ref,
            "title": schedule.title,
            "description": schedule.description,
            "arms": arms,
        }
        return Response(s.ScheduleSerializer(payload).data)


def _forms_visible_to(user):
    """Forms used by the schedule of a study the user sees (definitions of other studies stay private)."""
    return FormDefinition.objects.filter(
        event_forms__event__arm__schedule__studies__in=access.studies_visible_to(user)
    ).distinct()


class FormList(generics.ListAPIView):
    """Form definitions used by your studies."""

    serializer_class = s.FormSerializer

    def get_queryset(self):
        return _forms_visible_to(self.request.user).order_by("name", "version")


class FormDetail(generics.RetrieveAPIView):
    serializer_class = s.FormSerializer

    def get_object(self):
        form = (
            _forms_visible_to(self.request.user)
            .filter(name=self.kwargs["name"], version=self.kwargs["version"])
            .first()
        )
        if form is None:
            raise Http404("No such form in your studies.")
        return form


class ElementList(generics.ListAPIView):
    """Data elements of the forms your studies use."""

    serializer_class = s.DataElementSerializer

    def get_queryset(self):
        return (
            DataElement.objects.filter(forms__in=_forms_visible_to(self.request.user))
            .distinct()
            .prefetch_related("permissible_values")
            .order_by("public_id", "version")
        )


class ElementDetail(generics.RetrieveAPIView):
    serializer_class = s.DataElementSerializer

    def get_object(self):
        element = (
            DataElement.objects.filter(forms__in=_forms_visible_to(self.request.user))
            .filter(public_id=self.kwargs["public_id"], version=self.kwargs["version"])
            .distinct()
            .first()
        )
        if element is None:
            raise Http404("No such element in your studies' forms.")
        return element


def audit_visible_to(user, study):
    """The study's audit events the user may read (needs `view_audit`).

    A user limited to some sites reads only the events about their subjects and their records."""
    access.get_study(user, study.slug, "view_audit")
    # The study's chain is its events (record_event writes both): filtered by chain, a query uses the
    # audit indexes that begin with it (action, actor, time), as the audit page does.
    events = AuditEvent.objects.filter(chain=chain_key(study))
    visible_sites = access.sites_visible_to(user, study)
    if visible_sites.count() == study.sites.count():
        return events
    labels = Q(pk__in=[])
    for sid in access.subjects_visible_to(user, study).values_list("subject_id", flat=True):
        labels |= Q(object_label=sid) | Q(object_label__startswith=f"{sid} / ")
    return events.filter(Q(object_type__in=["subject", "record"]) & labels)


class AuditList(_StudyScoped, generics.ListAPIView):
    """The study's audit trail, oldest first (needs `view_audit`); filter with ?action=, ?object_type=.

    A de-identified reader sees it through the disclosure policy (capture/audit/shown.py): no
    identifier values, dates and timestamps shifted with their subject, the timestamps of events
    about no subject withheld (null), no hashes."""

    serializer_class = s.AuditEventSerializer

    def get_queryset(self):
        qs = audit_visible_to(self.request.user, self.study())
        for param in ("action", "object_type", "object_id"):
            if self.request.query_params.get(param):
                qs = qs.filter(**{param: self.request.query_params[param]})
        return qs.order_by("seq")

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        shown = shown_events(page, Disclosure.for_user(request.user, self.study()), self.study())
        return self.get_paginated_response(self.get_serializer(shown, many=True).data)


class JobDetail(generics.RetrieveAPIView):
    """A background job's status (yours, or any of the study's for its administrators)."""

    serializer_class = s.JobSerializer

    def get_object(self):
        jobs.recover_stale_jobs()
        return jobs.get_job(self.request.user, self.kwargs["job_id"])


class Whoami(APIView):
    """Who the token or session belongs to."""

    @extend_schema(responses={200: OpenApiResponse(description="{'username': ...}")})
    def get(self, request):
        return Response({"username": request.user.get_username()})
