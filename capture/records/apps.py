from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "capture.records"
    label = "records"
    verbose_name = "Form records"
