from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Owns `manage.py seed_demo`; no models."""

    name = "capture.demo"
    label = "demo"
    verbose_name = "Demo study"
