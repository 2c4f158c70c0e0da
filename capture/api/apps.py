from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "capture.api"
    label = "api"
    verbose_name = "API"
