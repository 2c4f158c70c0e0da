"""What a user may see of a study's values: the one disclosure policy.

Every page, API serializer, export writer, query and audit view, timeline and cohort filter
reads values through a `Disclosure`; nothing else decides whether an item is an identifier
to hide, whether a date is real or shifted, or whether a DICOM free-text field is shown.

The rule (docs/reliability.md, "Disclosure policy"):

- A user whose role holds `view_identifiers` sees the *identified world*: identifier items,
  real dates, real timestamps, DICOM free text.
- Every other user sees one consistent *de-identified world*:
  - identifier items (elements flagged `identifier`) are masked on pages and absent from data;
  - every date and date-time of a subject moves by that subject's `date_shift_days` — the shift
    exports and DICOM copies use — so no page shows a date the export does not;
  - timestamps of things that belong to a subject (record created/updated, audit events,
    queries) move by the same shift; timestamps that belong to no subject are withheld, since
    lined up against the shifted ones they would give the shift away;
  - DICOM free text (StudyDescription, SeriesDescription: PS3.15 Annex E action X) is withheld.
- A filter (export cohort, search) is evaluated on the values the user may see, never on raw
  ones: an expression that names an identifier item is refused, dates compare shifted.

An identified export (the `export_identified` right and a reason) builds its own policy with
`Disclosure.for_export`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import access

MASK = "•••• (identifier hidden)"
WITHHELD = "(withheld)"
# A file field's value in the de-identified world: there is a file (REDCap's own word for it);
# its name and content, which nobody vetted for identifiers, are not shown.
FILE_PRESENT = "[document]"
DATE_TYPES = frozenset({"date", "datetime"})


@dataclass(frozen=True)
class Disclosure:
    """One user's view of one study's values. Build it with `for_user` (or `for_export`)."""

    study_id: int
    identified: bool

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_user(cls, user, study) -> Disclosure:
        """The policy of `user` in `study`: identified only with `view_identifiers`."""
        return cls(study_id=study.pk, identified="view_identifiers" in access.permissions(user, study))

    @classmethod
    def for_export(cls, study, *, identified: bool) -> Disclosure:
        """The policy of an export whose identified/de-identified choice the export service has
        already checked against the user's rights and reason."""
        return cls(study_id=study.pk, identified=identified)

    # ------------------------------------------------------------------ questions

    @property
    def shifts_dates(self) -> bool:
        return not self.identified

    @property
    def shows_dicom_text(self) -> bool:
        return self.identified

    def hides(self, element_or_field) -> bool:
        """True when an item (a DataElement, or anything with an `identifier` flag) is hidden."""
        return not self.identified and bool(getattr(element_or_field, "identifier", False))

    # ------------------------------------------------------------------ dates

    def shift_of(self, subject) -> int:
        """The number of days this user's dates of `subject` move (0 in the identified world)."""
        return 0 if self.identified or subject is None else int(subject.date_shift_days)

    def date(self, subject, value):
        """A date (or date-time) of `subject` as this user sees it. Accepts `date`,
        `datetime`, an ISO string (returned as a string in the same shape) or None; a value
        that is not a date (a missing-data code such as "UNK") comes back unchanged."""
        days = self.shift_of(subject)
        if not days or value in (None, ""):
            return value
        if isinstance(value, dt.date):  # datetime is a date too
            return value + dt.timedelta(days=days)
        if isinstance(value, str):
            return shift_text(value, days)
        return value

    def enrollment_date(self, subject) -> dt.date:
        return self.date(subject, subject.enrollment_date)

    def timestamp(self, subject, value: dt.datetime | None) -> dt.datetime | None:
        """A system timestamp (record saved, audit event, query message) as this user sees it:
        real in the identified world; shifted with the subject's dates, or withheld (None) when
        it belongs to no subject, in the de-identified one."""
        if value is None or self.identified:
            return value
        if subject is None:
            return None
        return value + dt.timedelta(days=int(subject.date_shift_days))

    def timestamp_by_shift(self, shift_days: int | None, value: dt.datetime | None) -> dt.datetime | None:
        """As `timestamp`, for callers that hold only the subject's shift (None: no subject)."""
        if value is None or self.identified:
            return value
        if shift_days is None:
            return None
        return value + dt.timedelta(days=int(shift_days))

    # ------------------------------------------------------------------ values

    def value(self, subject, *, datatype: str, identifier: bool, value: Any) -> Any:
        """One stored value as this user sees it on a page: MASK for a hidden identifier (never
        the value), a shifted date, anything else unchanged."""
        if identifier and not self.identified:
            return MASK if value not in (None, "", []) else value
        if datatype in DATE_TYPES:
            return self.date(subject, value)
        if datatype == "file":
            return self.file_name(value)
        return value

    def file_name(self, name):
        """A file field's file (its name, or the reference a record holds) as this user sees it:
        unchanged in the identified world, FILE_PRESENT in the de-identified one."""
        if self.identified or name in (None, "", []):
            return name
        return FILE_PRESENT

    def record_data(self, subject, fields_by_name: dict, data: dict) -> dict:
        """A record's stored values as data for this user: hidden identifier items are left out
        (not masked: data consumers must not mistake a mask for a value), dates shifted.
        `fields_by_name` maps item names to objects with `datatype` and `identifier`; a key the
        form does not know is left out of a de-identified view (it cannot be vouched for)."""
        if self.identified:
            return data
        days = self.shift_of(subject)
        out: dict = {}
        for key, value in data.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):  # a repeating group
                out[key] = [self._row(row, fields_by_name, days) for row in value]
                continue
            field = fields_by_name.get(key)
            if field is None or field.identifier:
                continue
            out[key] = self._data_value(field.datatype, value, days)
        return out

    def _data_value(self, datatype: str, value, days: int):
        if datatype in DATE_TYPES:
            return shift_text(value, days)
        return self.file_name(value) if datatype == "file" else value

    def _row(self, row: dict, fields_by_name: dict, days: int) -> dict:
        out = {}
        for key, value in row.items():
            field = fields_by_name.get(key)
            if field is None or field.identifier:
                continue
            out[key] = self._data_value(field.datatype, value, days)
        return out

    def dicom_text(self, value: str | None) -> str:
        """A DICOM free-text field (StudyDescription, SeriesDescription) as this user sees it."""
        if self.identified:
            return value or ""
        return ""


def shift_text(value, days: int):
    """Move an ISO date or date-time string by `days`; anything else (a missing-data code, a
    number, a list) unchanged. A date stays a date; a date-time comes back as stored records
    hold them ("YYYY-MM-DD HH:MM", seconds only when there are some)."""
    if not days or not isinstance(value, str) or len(value) < 10:
        return value
    try:
        if len(value) == 10:
            return (dt.date.fromisoformat(value) + dt.timedelta(days=days)).isoformat()
        moved = dt.datetime.fromisoformat(value) + dt.timedelta(days=days)
    except ValueError:
        return value
    return moved.isoformat(sep=" ", timespec="minutes" if moved.second == 0 else "seconds")


def for_user(user, study) -> Disclosure:
    """`Disclosure.for_user`, the short spelling views use."""
    return Disclosure.for_user(user, study)
