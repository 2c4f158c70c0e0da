from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "capture.audit"
    label = "audit"
    verbose_name = "Audit trail"
