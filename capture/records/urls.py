from django.urls import path

from capture.monitoring.views import query_list

from . import views

app_name = "records"
RECORD = "studies/<slug:slug>/subjects/<str:subject_id>/<slug:event>/<slug:form>/<int:instance>/"

urlpatterns = [
    path(RECORD + "edit/", views.entry_page, name="entry"),
    path(RECORD + "history/<slug:field>/", views.field_history, name="history"),
    path(RECORD + "lock/", views.lock_record, name="lock"),
    path(RECORD + "sign/", views.sign_record, name="sign"),
    path(RECORD + "remove/", views.delete_instance, name="remove"),
    path(RECORD + "queries/", views.record_queries, name="record_queries"),
    path(RECORD + "queries/new/", views.query_new, name="query_new"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/<slug:event>/<slug:form>/new/",
        views.add_instance,
        name="add_instance",
    ),
    path("studies/<slug:slug>/subjects/<str:subject_id>/lock/", views.lock_subject, name="lock_subject"),
    path("studies/<slug:slug>/queries/", query_list, name="queries"),
    path("studies/<slug:slug>/queries/<int:pk>/", views.query_detail, name="query"),
]
