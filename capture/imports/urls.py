from django.urls import path

from . import views

app_name = "imports"
urlpatterns = [
    path("studies/<slug:slug>/imports/", views.index, name="index"),
    path("studies/<slug:slug>/imports/<uuid:upload_id>/", views.upload_detail, name="upload"),
    path("studies/<slug:slug>/imports/<uuid:upload_id>/report.xlsx", views.report_download, name="report"),
    path("studies/<slug:slug>/imports/jobs/<uuid:job_id>/", views.job_detail, name="job"),
]
