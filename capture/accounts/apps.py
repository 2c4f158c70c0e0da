from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "capture.accounts"
    label = "accounts"
    verbose_name = "Accounts"
