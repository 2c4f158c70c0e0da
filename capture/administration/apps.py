from django.apps import AppConfig


class AdministrationConfig(AppConfig):
    name = "capture.administration"
    label = "administration"
    verbose_name = "Study administration"
