from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "capture.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring and data quality"
