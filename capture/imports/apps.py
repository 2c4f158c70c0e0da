from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "capture.imports"
    label = "imports"
    verbose_name = "Spreadsheet imports"
