"""Settings for the test suite: fast hashing, no lockout surprises between tests."""

from .base import *  # noqa: F403
from .base import CAPTURE

DEBUG = False
SECRET_KEY = "test-only-not-secret-7d2c"  # noqa: S105 - test only
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AXES_ENABLED = True
STORAGES = {  # the named storages of base.py (local under MEDIA_ROOT unless CAPTURE_STORAGE is set)
    **STORAGES,  # noqa: F405
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CAPTURE = {**CAPTURE, "JOB_HANDLER_PREFIXES": ("capture.", "tests.")}
# Serve static files from the apps (no collectstatic before tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# A fixed pseudonym master key: test data is fake, and golden files hold the shifts it gives.
# (Deployments set CAPTURE_PSEUDONYM_KEY; development makes var/pseudonym.key — studies/pseudonyms.py.)
PSEUDONYM_KEY = bytes.fromhex("27c78b18a5ba6266e1e87b31c03c5b9e2b83115791c09b9391ee75c8a3c754c4")
