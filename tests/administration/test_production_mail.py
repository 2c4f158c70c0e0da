"""Production settings take the invitation mail relay from the environment (docs/deploy.md)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BASE_ENV = {
    "DJANGO_SETTINGS_MODULE": "capture.settings.production",
    "CAPTURE_SECRET_KEY": "test-" + "k" * 60,
    "CAPTURE_ALLOWED_HOSTS": "capture.example.org",
    "CAPTURE_PSEUDONYM_KEY": "test-" + "p" * 60,
}
SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER or '-', s.EMAIL_USE_TLS, s.DEFAULT_FROM_EMAIL)"
)


def _mail_settings(**extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTURE_EMAIL")}
    env.update(BASE_ENV, **extra)
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_without_a_relay_configured_mail_goes_to_localhost_from_the_first_host():
    assert _mail_settings() == "localhost 25 - False capture@capture.example.org"


def test_the_relay_host_port_login_tls_and_sender_come_from_the_environment():
    shown = _mail_settings(
        CAPTURE_EMAIL_HOST="smtp.example.org",
        CAPTURE_EMAIL_PORT="587",
        CAPTURE_EMAIL_USER="capture",
        CAPTURE_EMAIL_PASSWORD="secret",
        CAPTURE_EMAIL_TLS="true",
        CAPTURE_EMAIL_FROM="trials@example.org",
    )
    assert shown == "smtp.example.org 587 capture True trials@example.org"
