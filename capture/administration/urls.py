from django.urls import path

from . import views

app_name = "administration"
urlpatterns = [
    path("studies/<slug:slug>/members/", views.members, name="members"),
    path("studies/<slug:slug>/members/add/", views.member_add, name="member_add"),
    path("studies/<slug:slug>/members/<int:pk>/", views.member, name="member"),
    path("studies/<slug:slug>/sites/", views.sites, name="sites"),
    path("studies/<slug:slug>/sites/add/", views.site_add, name="site_add"),
    path("studies/<slug:slug>/sites/<int:pk>/", views.site, name="site"),
    path("studies/<slug:slug>/subjects/<str:subject_id>/move/", views.move_subject, name="move_subject"),
    path("studies/<slug:slug>/settings/", views.study_settings, name="settings"),
    path("studies/<slug:slug>/audit/", views.audit, name="audit"),
    path("studies/<slug:slug>/audit/csv/", views.audit_csv, name="audit_csv"),
    path("studies/<slug:slug>/audit/verify/", views.audit_verify, name="audit_verify"),
    path("accounts/invitation/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="set_password"),
]
