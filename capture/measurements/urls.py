from django.urls import path

from . import views

app_name = "measurements"
urlpatterns = [
    path("studies/<slug:slug>/measurements/", views.report_list, name="list"),
    path("studies/<slug:slug>/measurements/queue/", views.queue, name="queue"),
    path("studies/<slug:slug>/measurements/queue/<int:pk>/assign/", views.assign, name="assign"),
]
