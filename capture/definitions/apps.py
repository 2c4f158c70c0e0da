from django.apps import AppConfig


class DefinitionsConfig(AppConfig):
    name = "capture.definitions"
    label = "definitions"
    verbose_name = "Definitions"
