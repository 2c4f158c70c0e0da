"""Production settings: everything secret or site-specific comes from the environment,
and `manage.py check --deploy` is clean. Required: CAPTURE_SECRET_KEY,
CAPTURE_ALLOWED_HOSTS, DATABASE_URL."""

import os

from capture.env import env_bool, env_int, env_list, env_str

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env_str("CAPTURE_SECRET_KEY")
ALLOWED_HOSTS = env_list("CAPTURE_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set CAPTURE_ALLOWED_HOSTS to the host names Capture is served under.")
CSRF_TRUSTED_ORIGINS = env_list("CAPTURE_CSRF_TRUSTED_ORIGINS", [])

SECURE_SSL_REDIRECT = env_bool("CAPTURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("CAPTURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

STORAGES = {  # the named storages of base.py follow CAPTURE_STORAGE (docs/deploy.md)
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
PSEUDONYM_KEY_REQUIRED = True  # capture/studies/pseudonyms.py: CAPTURE_PSEUDONYM_KEY must be set

# Invitations (study administration) go by e-mail: an SMTP relay, from the environment.
EMAIL_HOST = env_str("CAPTURE_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("CAPTURE_EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("CAPTURE_EMAIL_USER", "")  # a relay may need no log-in
EMAIL_HOST_PASSWORD = os.environ.get("CAPTURE_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("CAPTURE_EMAIL_TLS", False)
DEFAULT_FROM_EMAIL = env_str("CAPTURE_EMAIL_FROM", f"capture@{ALLOWED_HOSTS[0]}")
