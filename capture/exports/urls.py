from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("studies/<slug:slug>/exports/", views.builder, name="builder"),
]
