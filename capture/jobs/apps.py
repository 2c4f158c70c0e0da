from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "capture.jobs"
    label = "jobs"
    verbose_name = "Background jobs"
