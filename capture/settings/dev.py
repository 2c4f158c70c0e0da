"""The embedded default: SQLite, debug pages, a fixed development key.
Never use it for real data: production settings are `capture.settings.production`."""

from .base import *  # noqa: F403

DEBUG = True
SECRET_KEY = "dev-only-not-secret-0f1b6e2a9c"  # noqa: S105 - development only, production reads the environment
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Invitations (capture/administration) are printed, not sent.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
