"""Pseudonyms: keyed hashes of source identifiers, and each subject's date shift.

A master key lives outside the database and outside the repository:

- `CAPTURE_PSEUDONYM_KEY` from the environment (production refuses to start without it);
- the test settings' fixed `PSEUDONYM_KEY` (test data is fake);
- otherwise (development, the demo) a random key made once by the first command that needs it and
  kept in `var/pseudonym.key` (mode 0600, `CAPTURE['PSEUDONYM_KEY_FILE']`; var/ is not in git).

It is never derived from a key in the repository: with the development SECRET_KEY anyone could
compute every shift and reverse the audit's identifier hashes.

Each study's secret is HMAC(master, study slug), so one study's hashes say nothing about another's.
From that secret:

- `source_hash(study, identifier)` maps a DICOM PatientID, an MRN or an accession number to a
  stable token, so linkage works without storing the raw identifier;
- `date_shift_days(study, subject_id)` gives the subject's one date shift, 0–364 days back (as
  REDCap does), used by DICOM de-identification and de-identified exports alike;
- `remap_uid(study, uid)` gives a de-identified DICOM UID, the same for the same input.

Changing the master key breaks the link to every hash already stored: it must stay the same for
the life of a deployment. So the database keeps the key's fingerprint (an HMAC of a constant under
the key, never the key) from its first use, and a process whose key has another fingerprint stops
with ImproperlyConfigured instead of writing subjects and links under a second key. A database made
before fingerprints were kept is checked against its subjects' stored date shifts instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

# A de-identified date moves back by 0..364 days: never forward, never a whole year or more.
DATE_SHIFT_DAYS = 365
FINGERPRINT_NAME = "pseudonym-master"
# Databases whose fingerprint this process has compared (name of the database, fingerprint).
_checked: set[tuple[str, str]] = set()


def master_key() -> bytes:
    """The master key, after checking it is the one the database's subjects were made under."""
    key = configured_key()
    _check_fingerprint(key)
    return key


def configured_key() -> bytes:
    key = os.environ.get("CAPTURE_PSEUDONYM_KEY", "")
    if key:
        return key.encode()
    # Checked when first used, not at start-up, so `check --deploy` runs without secrets.
    if getattr(settings, "PSEUDONYM_KEY_REQUIRED", False):
        raise ImproperlyConfigured(
            "Set CAPTURE_PSEUDONYM_KEY to a long random secret (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`) and keep it: pseudonyms and links depend on it."
        )
    fixed = getattr(settings, "PSEUDONYM_KEY", None)
    if fixed:  # the test settings' fixed key; a deployment's comes from the environment
        return fixed if isinstance(fixed, bytes) else str(fixed).encode()
    return _local_key()


def key_file() -> Path:
    return Path(settings.CAPTURE.get("PSEUDONYM_KEY_FILE") or Path(settings.VAR_DIR) / "pseudonym.key")


def _local_key() -> bytes:
    """Development and the demo: a random key made once, readable by its owner only."""
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use that one
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(
            f"{path} is empty. Restore it from a backup (the subjects' shifts and links depend on it), "
            "or delete it to make a new key for a new, empty database."
        )
    return key.encode()


def fingerprint(key: bytes) -> str:
    """What the database keeps of the master key: HMAC(key, a constant). It tells keys apart and
    says nothing about the key."""
    return hmac.new(key, b"capture-pseudonym-key-fingerprint", hashlib.sha256).hexdigest()


def _check_fingerprint(key: bytes) -> None:
    found = fingerprint(key)
    seen = (str(connection.settings_dict.get("NAME")), found)
    if seen in _checked:
        return
    from .models import KeyFingerprint

    created = False
    try:
        with transaction.atomic():  # a savepoint: a missing table must not spoil the caller's transaction
            stored = (
                KeyFingerprint.objects.filter(name=FINGERPRINT_NAME)
                .values_list("fingerprint", flat=True)
                .first()
            )
            if stored is None:
                _check_existing_subjects(key)
                row, created = KeyFingerprint.objects.get_or_create(
                    name=FINGERPRINT_NAME, defaults={"fingerprint": found}
                )
                stored = row.fingerprint
    except DatabaseError:
        return  # no table yet (before `migrate`): nothing was made under any key
    if stored != found:
        raise key_mismatch()
    if created:  # remember it once committed: a rolled-back first use leaves no fingerprint behind
        transaction.on_commit(lambda: _checked.add(seen))
    else:
        _checked.add(seen)


def key_mismatch() -> ImproperlyConfigured:
    return ImproperlyConfigured(
        "The pseudonym master key is not the one this database's subjects were made with: date shifts, "
        "imaging links and identifier hashes would not match. Fix: set CAPTURE_PSEUDONYM_KEY (or restore "
        f"{key_file()}) to the key used before; check DJANGO_SETTINGS_MODULE names the deployment's settings. "
        "Only for a new, empty database may a new key be used (a development database made before "
        "var/pseudonym.key existed: delete var/capture.sqlite3 and run ./dev.sh demo again)."
    )


def _check_existing_subjects(key: bytes) -> None:
    """A database from before fingerprints were kept: its subjects' stored date shifts tell whether
    they were made under `key` (a wrong key matches one subject in 365, so three misses are proof)."""
    from .models import Subject

    sample = list(Subject.objects.select_related("study").order_by("pk")[:5])
    if len(sample) >= 3 and not any(s.date_shift_days == _shift(key, s.study, s.subject_id) for s in sample):
        raise key_mismatch()


def study_secret(study, key: bytes | None = None) -> bytes:
    return hmac.new(key or master_key(), f"study:{study.slug}".encode(), hashlib.sha256).digest()


def _mac(study, purpose: str, value: str, key: bytes | None = None) -> bytes:
    return hmac.new(study_secret(study, key), f"{purpose}:{value}".encode(), hashlib.sha256).digest()


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
    return _shift(None, study, subject_id)


def date_shifts(study, subject_ids: Iterable[str]) -> list[int]:
    """date_shift_days of many subjects of one study (an import enrols thousands): the study's
    secret, and the master key's check, made once instead of once a subject."""
    secret = study_secret(study)
    return [_days(hmac.digest(secret, f"date-shift:{sid}".encode(), "sha256")) for sid in subject_ids]


def _shift(key: bytes | None, study, subject_id: str) -> int:
    return _days(_mac(study, "date-shift", subject_id, key))


def _days(digest: bytes) -> int:
    return -(int.from_bytes(digest[:8], "big") % DATE_SHIFT_DAYS)


def remap_uid(study, uid: str) -> str:
    """A de-identified UID under the 2.25 root (a UUID-derived integer), stable for the study."""
    digest = _mac(study, "uid", str(uid).strip())
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"
