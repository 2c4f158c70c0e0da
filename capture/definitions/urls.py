from django.urls import path

from . import views

app_name = "definitions"
urlpatterns = [
    path("definitions/import/", views.import_new, name="import_new"),
    path("studies/<slug:slug>/definitions/import/", views.import_for_study, name="import_for_study"),
    path("studies/<slug:slug>/definitions/export/<slug:fmt>/", views.export, name="export"),
]
