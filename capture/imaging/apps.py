from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "capture.imaging"
    label = "imaging"
    verbose_name = "Imaging"
