"""Routes: the REST API under api/v1/, its schema and docs, the token pages, and the
REDCap-compatible endpoint at redcap/api/ (REDCap clients require a URL ending in /api/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from capture.exports.api import ExportCreate

from . import measurements, pages, views
from .redcap.views import redcap_api

app_name = "api"
urlpatterns = [
    path("api/tokens/", pages.token_list, name="tokens"),
    path("api/tokens/new/", pages.token_create, name="token_create"),
    path("api/tokens/<int:pk>/revoke/", pages.token_revoke, name="token_revoke"),
    path("api/tokens/redcap/<slug:slug>/new/", pages.redcap_token_create, name="redcap_token_create"),
    path("api/tokens/redcap/<int:pk>/revoke/", pages.redcap_token_revoke, name="redcap_token_revoke"),
    path("api/v1/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path("api/v1/docs/", pages.docs, name="docs"),
    path("api/v1/me/", views.Whoami.as_view(), name="me"),
    path("api/v1/studies/", views.StudyList.as_view(), name="study-list"),
    path("api/v1/studies/<slug:slug>/", views.StudyDetail.as_view(), name="study-detail"),
    path("api/v1/studies/<slug:slug>/sites/", views.SiteList.as_view(), name="site-list"),
    path("api/v1/studies/<slug:slug>/schedule/", views.ScheduleDetail.as_view(), name="schedule"),
    path("api/v1/studies/<slug:slug>/subjects/", views.SubjectList.as_view(), name="subject-list"),
    path(
        "api/v1/studies/<slug:slug>/subjects/<str:subject_id>/",
        views.SubjectDetail.as_view(),
        name="subject-detail",
    ),
    path(
        "api/v1/studies/<slug:slug>/subjects/<str:subject_id>/records/",
        views.RecordList.as_view(),
        name="subject-records",
    ),
    path(
        "api/v1/studies/<slug:slug>/subjects/<str:subject_id>/records/<slug:event>/<slug:form>/<int:instance>/",
        views.RecordDetail.as_view(),
        name="record-detail",
    ),
    path("api/v1/studies/<slug:slug>/records/", views.RecordList.as_view(), name="record-list"),
    path("api/v1/studies/<slug:slug>/audit/", views.AuditList.as_view(), name="audit-list"),
    path(
        "api/v1/studies/<slug:slug>/measurements/",
        measurements.MeasurementList.as_view(),
        name="measurement-list",
    ),
    path(
        "api/v1/studies/<slug:slug>/subjects/<str:subject_id>/measurements/",
        measurements.MeasurementList.as_view(),
        name="subject-measurements",
    ),
    path(
        "api/v1/studies/<slug:slug>/responses/",
        measurements.TimepointResponseList.as_view(),
        name="response-list",
    ),
    path(
        "api/v1/studies/<slug:slug>/subjects/<str:subject_id>/responses/",
        measurements.TimepointResponseList.as_view(),
        name="subject-responses",
    ),
    path(
        "api/v1/studies/<slug:slug>/best-responses/",
        measurements.BestResponseList.as_view(),
        name="best-response-list",
    ),
    path("api/v1/forms/", views.FormList.as_view(), name="form-list"),
    path("api/v1/forms/<slug:name>/<str:version>/", views.FormDetail.as_view(), name="form-detail"),
    path("api/v1/elements/", views.ElementList.as_view(), name="element-list"),
    path(
        "api/v1/elements/<str:public_id>/<str:version>/", views.ElementDetail.as_view(), name="element-detail"
    ),
    path("api/v1/studies/<slug:slug>/exports/", ExportCreate.as_view(), name="export-create"),
    path("api/v1/jobs/<uuid:job_id>/", views.JobDetail.as_view(), name="job-detail"),
    path("redcap/api/", redcap_api, name="redcap"),
]
