from django.urls import path

from capture.migration import views as migration_views

from . import views

app_name = "definitions"
urlpatterns = [
    path("definitions/import/", views.import_new, name="import_new"),
    path("definitions/import/redcap-project/", migration_views.import_project, name="import_redcap_project"),
    path("studies/<slug:slug>/definitions/import/", views.import_for_study, name="import_for_study"),
    path("studies/<slug:slug>/definitions/export/<slug:fmt>/", views.export, name="export"),
]
