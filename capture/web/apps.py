from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "capture.web"
    label = "web"
    verbose_name = "Web pages"
