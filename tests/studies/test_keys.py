"""The pseudonym master key: never one from the repository, made once for development, and a
database refuses a key other than the one its subjects were made under."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from capture.accounts.system import SYSTEM
from capture.studies import pseudonyms, services
from capture.studies.models import KeyFingerprint
from tests.conftest import ROOT

DEV_SECRET_KEY = "dev-only-not-secret-0f1b6e2a9c"  # capture/settings/dev.py: public, in git


@pytest.fixture
def development(settings, monkeypatch, tmp_path):
    """Development settings: no key in the environment, none fixed by the settings."""
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY", raising=False)
    settings.PSEUDONYM_KEY = None
    settings.PSEUDONYM_KEY_REQUIRED = False
    settings.SECRET_KEY = DEV_SECRET_KEY
    settings.CAPTURE = {**settings.CAPTURE, "PSEUDONYM_KEY_FILE": tmp_path / "var" / "pseudonym.key"}
    return tmp_path / "var" / "pseudonym.key"


@pytest.fixture
def unchecked(monkeypatch):
    """Forget which databases this process has compared, as a new process would."""
    monkeypatch.setattr(pseudonyms, "_checked", set())


def test_development_makes_a_random_key_once_readable_by_its_owner_only(development, settings, tmp_path):
    key = pseudonyms.configured_key()
    assert development.exists() and stat.S_IMODE(development.stat().st_mode) == 0o600
    assert pseudonyms.configured_key() == key == development.read_text().strip().encode()
    derived = hmac.new(DEV_SECRET_KEY.encode(), b"capture-pseudonym-master", hashlib.sha256).digest()
    assert key != derived, "never a key computed from the SECRET_KEY in the repository"
    assert len(key) >= 48
    settings.CAPTURE = {**settings.CAPTURE, "PSEUDONYM_KEY_FILE": tmp_path / "other" / "pseudonym.key"}
    assert pseudonyms.configured_key() != key, "each checkout makes its own"


def test_an_empty_key_file_stops_with_how_to_fix_it(development):
    development.parent.mkdir(parents=True)
    development.write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="Restore it from a backup"):
        pseudonyms.configured_key()


def test_the_database_keeps_a_fingerprint_of_the_key_not_the_key(db, study, unchecked):
    pseudonyms.source_hash(study, "MRN-1")
    (row,) = KeyFingerprint.objects.all()
    key = pseudonyms.configured_key()
    assert row.fingerprint == pseudonyms.fingerprint(key)
    assert key.hex() not in row.fingerprint and key.decode("latin-1") not in row.fingerprint


def test_a_database_made_under_another_key_refuses_to_run(study, subjects, monkeypatch, unchecked):
    pseudonyms.master_key()  # the key the subjects were made with is now recorded
    monkeypatch.setenv("CAPTURE_PSEUDONYM_KEY", "another-deployments-key-0123456789")
    with pytest.raises(ImproperlyConfigured, match="not the one this database's subjects were made with"):
        pseudonyms.source_hash(study, "MRN-1")
    with pytest.raises(ImproperlyConfigured, match="Fix: set CAPTURE_PSEUDONYM_KEY"):
        services.enroll_subject(
            actor=SYSTEM, study=study, site=study.sites.first(), enrollment_date=subjects["a"].enrollment_date
        )
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY")
    assert pseudonyms.source_hash(study, "MRN-1"), "the right key works again"


def test_a_database_from_before_fingerprints_is_checked_against_its_subjects_shifts(
    study, subjects, monkeypatch, unchecked
):
    KeyFingerprint.objects.all().delete()
    monkeypatch.setenv("CAPTURE_PSEUDONYM_KEY", "another-deployments-key-0123456789")
    with pytest.raises(ImproperlyConfigured, match="not the one this database's subjects were made with"):
        pseudonyms.remap_uid(study, "1.2.3")
    assert not KeyFingerprint.objects.exists()
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY")
    pseudonyms.remap_uid(study, "1.2.3")
    assert KeyFingerprint.objects.get().fingerprint == pseudonyms.fingerprint(pseudonyms.configured_key())


def test_manage_py_says_when_it_falls_back_to_the_development_settings():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", "help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "DJANGO_SETTINGS_MODULE is not set: using capture.settings.dev" in done.stderr
