from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "capture.studies"
    label = "studies"
    verbose_name = "Studies"
