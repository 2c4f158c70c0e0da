"""Routes of the response side of issue 17: a subject's target designation."""

from django.urls import path

from . import pages

app_name = "response"
urlpatterns = [
    path("studies/<slug:slug>/subjects/<str:subject_id>/lesions/", pages.targets, name="targets"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/lesions/designate/", pages.designate, name="designate"
    ),
]
