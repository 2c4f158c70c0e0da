from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "capture.exports"
    label = "exports"
    verbose_name = "Dataset exports"
