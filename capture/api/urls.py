from django.urls import path  # noqa: F401 - the API's routes are added here

app_name = "api"
urlpatterns: list = []
