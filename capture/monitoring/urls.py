from django.urls import path

from . import views

app_name = "monitoring"
RECORD = "studies/<slug:slug>/subjects/<str:subject_id>/<slug:event>/<slug:form>/<int:instance>/"

urlpatterns = [
    path(RECORD + "verify/", views.verify, name="verify"),
    path(RECORD + "queries/open/", views.query_open, name="query_open"),
    path("studies/<slug:slug>/queries/<int:pk>/act/", views.query_act, name="query_act"),
    path("studies/<slug:slug>/data-quality/", views.data_quality, name="data_quality"),
    path("studies/<slug:slug>/data-quality/rules/", views.rules, name="rules"),
    path("studies/<slug:slug>/data-quality/<int:pk>/exclude/", views.exclude, name="exclude"),
    path("studies/<slug:slug>/data-quality/<int:pk>/query/", views.to_query, name="to_query"),
]
