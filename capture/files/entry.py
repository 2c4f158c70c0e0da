"""File fields on the data-entry page: keep an upload, check what a POST says a field holds, and
show the current file (a download link, and a box to remove it, for a user who may).

A POST names a field's current file in `<key>__current`; it is believed only when the record holds
that file already or this request uploaded it, so nobody points a field at another record's file.
Removing or replacing a file is a change of the record like any other: a Complete form asks for
a reason, and the audit trail keeps the old and new references.
"""

from __future__ import annotations

from html import escape

from django.urls import reverse

from . import services
from .models import file_id


class Uploads:
    """The files of one entry-page POST."""

    def __init__(self, user, subject, stored_data: dict):
        self.user, self.subject = user, subject
        self.allowed = services.references(stored_data)
        self.errors: dict[str, str] = {}

    def store(self, upload, key: str) -> str:
        """Keep `upload` for the field posted as `key`; its reference, or "" with an error kept."""
        try:
            stored = services.store(actor=self.user, subject=self.subject, upload=upload)
        except services.FileRejectedError as exc:
            self.errors[_error_key(key)] = " ".join(exc.messages)
            return ""
        self.allowed.add(stored.id)
        return stored.reference

    def foreign(self, values: dict, rows: dict) -> list[str]:
        """Fields whose posted reference is neither on the record nor uploaded now (they are
        refused: a forged or stale value)."""
        bad = [k for k, v in values.items() if _foreign(v, self.allowed)]
        for group, group_rows in rows.items():
            for index, row in enumerate(group_rows):
                bad += [f"{group}[{index + 1}].{k}" for k, v in row.items() if _foreign(v, self.allowed)]
        return bad


def _error_key(posted: str) -> str:
    """Where the page shows an error of the field posted as `posted`: "group-0-item" is "group[1].item"."""
    parts = posted.split("-")
    if len(parts) == 3 and parts[1].isdigit():
        return f"{parts[0]}[{int(parts[1]) + 1}].{parts[2]}"
    return posted


def _foreign(value, allowed) -> bool:
    key = file_id(value)
    return key is not None and key not in allowed


def shown(study, identified: bool, may_remove: bool):
    """The entry form's `file_html(value, key)`: what the page shows of a field's current file."""
    cache: dict = {}

    def html(value, key: str) -> str:
        pk = file_id(value)
        if pk is None:
            return escape(str(value or ""))
        if not identified:
            return "[document] (the file's name and content are hidden for your role)"
        if pk not in cache:
            cache.update(services.names([pk]))
        name = cache.get(pk, "(missing file)")
        url = reverse("files:download", kwargs={"slug": study.slug, "file_id": pk})
        out = f'<a href="{escape(url)}" download>{escape(name)}</a>'
        if may_remove:
            out += (
                f' <label class="choice"><input type="checkbox" name="{escape(key)}__remove" value="1">'
                " Remove</label>"
            )
        return out

    return html
