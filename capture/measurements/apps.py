from django.apps import AppConfig


class MeasurementsConfig(AppConfig):
    name = "capture.measurements"
    label = "measurements"
    verbose_name = "Imaging measurements and response"
