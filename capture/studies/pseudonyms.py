"""Pseudonyms: keyed hashes of source identifiers, and each subject's date shift.

A master key lives outside the database (`CAPTURE_PSEUDONYM_KEY`; production refuses to start
without it). Each study's secret is HMAC(master, study slug), so one study's hashes say nothing
about another's. From that secret:

- `source_hash(study, identifier)` maps a DICOM PatientID, an MRN or an accession number to a
  stable token, so linkage works without storing the raw identifier;
- `date_shift_days(study, subject_id)` gives the subject's one date shift, 0–364 days back (as
  REDCap does), used by DICOM de-identification and de-identified exports alike;
- `remap_uid(study, uid)` gives a de-identified DICOM UID, the same for the same input.

Changing the master key breaks the link to every hash already stored: it must stay the same for
the life of a deployment (the shift itself is stored on the subject at enrolment).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# A de-identified date moves back by 0..364 days: never forward, never a whole year or more.
DATE_SHIFT_DAYS = 365


def master_key() -> bytes:
    key = os.environ.get("CAPTURE_PSEUDONYM_KEY", "")
    if key:
        return key.encode()
    # Checked when first used, not at start-up, so `check --deploy` runs without secrets.
    if getattr(settings, "PSEUDONYM_KEY_REQUIRED", False):
        raise ImproperlyConfigured(
            "Set CAPTURE_PSEUDONYM_KEY to a long random secret (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`) and keep it: pseudonyms and links depend on it."
        )
    # Development and tests: derived from SECRET_KEY, so a fresh checkout works without set-up.
    return hmac.new(settings.SECRET_KEY.encode(), b"capture-pseudonym-master", hashlib.sha256).digest()


def study_secret(study) -> bytes:
    return hmac.new(master_key(), f"study:{study.slug}".encode(), hashlib.sha256).digest()


def _mac(study, purpose: str, value: str) -> bytes:
    return hmac.new(study_secret(study), f"{purpose}:{value}".encode(), hashlib.sha256).digest()


def normalise_identifier(identifier: str) -> str:
    # DICOM pads values with spaces; an MRN typed by hand may carry stray blanks.
    return str(identifier).strip()


def source_hash(study, identifier: str) -> str:
    """The HMAC-SHA256 (hex) of a source identifier under the study's secret."""
    value = normalise_identifier(identifier)
    if not value:
        raise ValueError("An empty identifier has no pseudonym.")
    return _mac(study, "source", value).hex()


def date_shift_days(study, subject_id: str) -> int:
    """The subject's date shift: a whole number of days in -364..0, fixed by the study secret."""
    digest = _mac(study, "date-shift", subject_id)
    return -(int.from_bytes(digest[:8], "big") % DATE_SHIFT_DAYS)


def remap_uid(study, uid: str) -> str:
    """A de-identified UID under the 2.25 root (a UUID-derived integer), stable for the study."""
    digest = _mac(study, "uid", str(uid).strip())
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"
