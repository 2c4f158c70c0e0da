from django.urls import path

from . import views

app_name = "reports"
REPORT = "studies/<slug:slug>/reports/<int:pk>/"

urlpatterns = [
    path("studies/<slug:slug>/reports/", views.report_list, name="list"),
    path("studies/<slug:slug>/reports/new/", views.report_new, name="new"),
    path(REPORT, views.report_view, name="view"),
    path(REPORT + "csv/", views.report_csv, name="csv"),
    path(REPORT + "edit/", views.report_edit, name="edit"),
    path(REPORT + "delete/", views.report_delete, name="delete"),
]
