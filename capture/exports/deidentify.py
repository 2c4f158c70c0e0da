"""The export's de-identification: what the disclosure policy lets it show, and how.

`Deidentifier` is shared by the builder, its converters and the imaging columns; it lives
apart from them so that none of those modules needs another for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject


@dataclass
class Deidentifier:
    """The export's de-identification. What it may show is the export's disclosure policy
    (`Disclosure.for_export`: identifier items, real or shifted dates); how dates are written
    (shifted, days since enrolment, real) and whether ids are re-hashed is the export's choice
    within that policy."""

    policy: Disclosure
    date_mode: str
    rehash_key: bytes | None
    # File id -> its path in the zip, for an export with file contents (capture/files/exports.py).
    file_paths: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.date_mode == "none" and not self.policy.identified:
            raise ValidationError("Real dates are only in identified exports; choose 'shift' or 'offset'.")

    @property
    def identified(self) -> bool:
        return self.policy.identified

    def hides(self, element) -> bool:
        """True when the export leaves the item out (an identifier in a de-identified export)."""
        return self.policy.hides(element)

    def subject_key(self, subject_id: str | None) -> str | None:
        if subject_id is None or self.rehash_key is None:
            return subject_id
        return hmac.new(self.rehash_key, subject_id.encode(), hashlib.sha256).hexdigest()[:16]

    def uid(self, uid: str | None) -> str | None:
        """A (de-identified) DICOM UID as the export shows it: with re-hashed ids, a UID under the
        2.25 root made with this export's key, so two exports cannot be joined on imaging UIDs
        either; otherwise as stored."""
        if not uid or self.rehash_key is None:
            return uid
        digest = hmac.new(self.rehash_key, b"uid\x00" + uid.encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def shift_days(self, subject: Subject) -> int:
        """Days the export moves `subject`'s dates: the policy's shift (de-identified), or the
        same subject shift when an identified export asks for shifted dates; 0 for real dates."""
        if self.policy.shifts_dates or self.date_mode == "none":
            return self.policy.shift_of(subject)
        return int(subject.date_shift_days)

    def date(self, value: dt.date, subject: Subject):
        """A date as the export shows it: shifted, as days since enrolment, or real."""
        if self.date_mode == "offset":
            day = value.date() if isinstance(value, dt.datetime) else value
            return (day - subject.enrollment_date).days
        if self.policy.shifts_dates or self.date_mode == "none":
            return self.policy.date(subject, value)
        return value + dt.timedelta(days=self.shift_days(subject))
