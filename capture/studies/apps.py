from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "capture.studies"
    label = "studies"
    verbose_name = "Studies"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
