from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "capture.files"
    label = "files"
    verbose_name = "Uploaded files of file fields"
