"""Capture's settings with DEBUG off, plus this benchmark app and its URLs (no TLS redirect: 127.0.0.1)."""

import os

from capture.settings.base import *  # noqa: F403 - the settings under test, unchanged
from capture.settings.base import INSTALLED_APPS

DEBUG = False
SECRET_KEY = "benchmark-only-not-secret"  # noqa: S105 - a throw-away server on 127.0.0.1
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = [*INSTALLED_APPS, "ecrf_benchsite"]
ROOT_URLCONF = "ecrf_benchsite.urls"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
AXES_ENABLED = False  # logins are made by session cookie; nothing to lock out
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if os.environ.get("BENCH_SQLITE"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["BENCH_SQLITE"],
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
# collectstatic is not run for a throw-away server; WhiteNoise serves from the app folders.
STATIC_ROOT = None

# A failed request prints its traceback (DEBUG is off, so Django would otherwise only mail admins).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
