"""System checks: production needs the pseudonym master key before the first subject is enrolled."""

import os

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def pseudonym_key_is_set(app_configs, **kwargs):
    if not getattr(settings, "PSEUDONYM_KEY_REQUIRED", False) or os.environ.get("CAPTURE_PSEUDONYM_KEY"):
        return []
    return [
        Error(
            "CAPTURE_PSEUDONYM_KEY is not set.",
            hint="Set it to a long random secret (python -c 'import secrets; print(secrets.token_urlsafe(48))') "
            "and keep it for the life of the deployment: subject date shifts and imaging links derive from it.",
            id="capture.E001",
        )
    ]
