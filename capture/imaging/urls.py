from django.urls import path

from . import views

app_name = "imaging"
urlpatterns = [
    path("studies/<slug:slug>/imaging/", views.imaging_list, name="list"),
    path("studies/<slug:slug>/imaging/queue/", views.queue, name="queue"),
    path("studies/<slug:slug>/imaging/queue/<int:pk>/assign/", views.assign, name="assign"),
    path("studies/<slug:slug>/imaging/quarantine/", views.quarantine, name="quarantine"),
    path(
        "studies/<slug:slug>/imaging/quarantine/<int:pk>/decide/",
        views.quarantine_decide,
        name="quarantine_decide",
    ),
    path("studies/<slug:slug>/imaging/ingest/", views.ingest, name="ingest"),
    path("studies/<slug:slug>/imaging/ingest/<uuid:job_id>/", views.ingest_job, name="ingest_job"),
    path("studies/<slug:slug>/subjects/<str:subject_id>/imaging/", views.subject_link, name="subject_link"),
    path("studies/<slug:slug>/subjects/<str:subject_id>/timeline/", views.timeline, name="timeline"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/timeline.json",
        views.timeline_json,
        name="timeline_json",
    ),
]
