"""Routes of the response side of issue 17: a subject's target designation and
the reader's status of its non-target and new lesions at follow-up."""

from django.urls import path

from . import pages

app_name = "response"
urlpatterns = [
    path("studies/<slug:slug>/subjects/<str:subject_id>/lesions/", pages.targets, name="targets"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/lesions/designate/", pages.designate, name="designate"
    ),
    path("studies/<slug:slug>/subjects/<str:subject_id>/lesions/assess/", pages.assess, name="assess"),
]
