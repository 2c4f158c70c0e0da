from django.urls import path

from . import views

app_name = "jobs"
urlpatterns = [
    path("<uuid:job_id>/", views.job_detail, name="detail"),
    path("<uuid:job_id>/status/", views.job_status, name="status"),
    path("<uuid:job_id>/retry/", views.job_retry, name="retry"),
    path("<uuid:job_id>/download/", views.job_download, name="download"),
]
