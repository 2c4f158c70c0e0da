from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/hello/", views.hello),
    path("bench/plain/", views.plain_form),
    path("", include("capture.urls")),
]
