from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "capture.reports"
    label = "reports"
    verbose_name = "Saved reports"
