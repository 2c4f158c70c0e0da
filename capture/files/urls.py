from django.urls import path

from . import views

app_name = "files"

urlpatterns = [
    path("studies/<slug:slug>/files/<uuid:file_id>/", views.download, name="download"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/<slug:event>/<slug:form>/<int:instance>/pdf/",
        views.record_pdf,
        name="record_pdf",
    ),
    path("studies/<slug:slug>/subjects/<str:subject_id>/pdf/", views.subject_pdf, name="subject_pdf"),
]
