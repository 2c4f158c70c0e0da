from django.urls import path

from . import views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("studies/", views.study_list, name="study_list"),
    path("studies/<slug:slug>/", views.dashboard, name="dashboard"),
    path("studies/<slug:slug>/enroll/", views.enroll, name="enroll"),
    path("studies/<slug:slug>/subjects/<str:subject_id>/", views.subject_detail, name="subject"),
    path(
        "studies/<slug:slug>/subjects/<str:subject_id>/<slug:event>/<slug:form>/<int:instance>/",
        views.record_detail,
        name="record",
    ),
]
