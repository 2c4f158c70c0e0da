"""Files of file fields: take an upload in (limits, virus-scan hook, storage), put it on a record or
take it off through the record service, and give it out to those who may read it.

Rules (docs/ecrf.md, "File fields"):
- an upload is refused past CAPTURE["FILE_MAX_BYTES"], or when its extension is not in
  CAPTURE["FILE_EXTENSIONS"] (its type is the one that extension names, never the browser's
  claim), or when the callable named by CAPTURE["FILE_SCANNER"] rejects it;
- the content goes to the storage named "capture_files", through Django's storage API only;
- a record holds the file's reference; putting one on, replacing or taking one off is a change of
  the record by `records.services.save_record`, validated and audited like any other;
- reading a file asks what reading its record asks (the study, the subject's site), and, since
  a file's content and name are not vetted for identifiers, the identified world (a role that
  may view identifiers); everyone else sees that there is a file, never its name or content.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import storages
from django.db import transaction
from django.http import Http404
from django.utils.module_loading import import_string
from django.utils.text import get_valid_filename

from capture.accounts.system import require_actor, user_or_none
from capture.records import services as records
from capture.records.compiled import compiled
from capture.records.models import FormRecord
from capture.records.slots import resolve_slot
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject

from .models import StoredFile, file_id

STORAGE = "capture_files"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_EXTENSIONS = (
    "pdf",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "tif",
    "tiff",
    "txt",
    "csv",
    "docx",
    "xlsx",
    "dcm",
    "zip",
)
API_REASON = "REDCap API: file import"
DELETE_REASON = "REDCap API: file delete"
NOT_VISIBLE = (
    "Files of this study may hold identifiers and your role sees the study de-identified: ask a "
    "study administrator for a role that may view identifiers to read them."
)


class FileRejectedError(ValidationError):
    """An upload that is not kept; the message says why and what to do."""


def _option(name: str, default):
    return settings.CAPTURE.get(name, default)


def storage():
    """The storage of file fields' contents (settings.STORAGES["capture_files"])."""
    return storages[STORAGE]


def clean_name(name: str) -> str:
    """The uploaded name, without any folder, safe in a header and a storage name."""
    base = PurePath(str(name).replace("\\", "/")).name
    return get_valid_filename(base)[-120:] if base.strip(". ") else "upload"


def check_upload(name: str, size: int) -> str:
    """The content type of an upload named `name` of `size` bytes, or FileRejectedError."""
    limit = int(_option("FILE_MAX_BYTES", DEFAULT_MAX_BYTES))
    if size > limit:
        raise FileRejectedError(
            f"{name} is {size:,} bytes; a file field takes at most {limit:,} bytes "
            "(CAPTURE_FILE_MAX_BYTES). Send a smaller file."
        )
    allowed = [e.lower().lstrip(".") for e in _option("FILE_EXTENSIONS", DEFAULT_EXTENSIONS)]
    extension = PurePath(name).suffix.lower().lstrip(".")
    if extension not in allowed:
        raise FileRejectedError(
            f"{name}: files of type {('.' + extension) if extension else '(no extension)'} are not "
            f"accepted; send one of {', '.join('.' + e for e in allowed)} (CAPTURE_FILE_EXTENSIONS)."
        )
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    types = _option("FILE_CONTENT_TYPES", ())
    if types and content_type not in types:
        raise FileRejectedError(
            f"{name}: files of type {content_type} are not accepted (CAPTURE_FILE_CONTENT_TYPES)."
        )
    return content_type


def _scan(upload, name: str) -> None:
    """Call the virus-scan hook, if one is set: it raises FileRejectedError (or returns a reason) to refuse."""
    path = _option("FILE_SCANNER", "")
    if not path:
        return
    scanner = import_string(path)
    upload.seek(0)
    reason = scanner(upload, name)
    upload.seek(0)
    if reason:
        raise FileRejectedError(f"{name} was refused by the virus scan: {reason}")


def store(*, actor, subject: Subject, upload) -> StoredFile:
    """Keep an upload (a Django UploadedFile or File) of `subject`, not yet on any record.
    FileRejectedError, with nothing kept, when a limit or the scan refuses it."""
    require_actor(actor)
    name = clean_name(getattr(upload, "name", "") or "upload")
    content_type = check_upload(name, upload.size)
    _scan(upload, name)
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    key = uuid.uuid4()
    saved = storage().save(f"files/{subject.study_id}/{key.hex}/{name}", upload)
    return StoredFile.objects.create(
        id=key,
        study_id=subject.study_id,
        subject=subject,
        name=name,
        content_type=content_type,
        size=upload.size,
        sha256=digest.hexdigest(),
        storage_name=saved,
        uploaded_by=user_or_none(actor),
    )


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Place:
    """A file field of one form record: the subject, event, form (Capture's name), instance, item."""

    subject: Subject
    event_name: str
    form_name: str
    instance: int
    field: str


def _check_field(place: Place) -> None:
    slot = resolve_slot(place.subject, place.event_name, place.form_name)
    c = compiled(slot.event_form.form)
    rule = c.rules.get(place.field)
    if rule is None or rule.datatype != "file":
        raise ValidationError(f"The field {place.field!r} is not a file upload field.")
    if place.field in c.grouped:
        raise ValidationError(
            f"The field {place.field!r} sits in a repeating group: upload it on the entry page."
        )


def record_at(place: Place) -> FormRecord | None:
    return FormRecord.objects.filter(
        subject=place.subject,
        event__name=place.event_name,
        event__arm=place.subject.arm_id,
        form_name=place.form_name,
        instance=place.instance,
    ).first()


def _write(actor, place: Place, record: FormRecord | None, value, reason: str) -> FormRecord:
    values = dict(record.data) if record is not None else {}
    if value is None:
        values.pop(place.field, None)
    else:
        values[place.field] = value
    return records.save_record(
        actor=actor,
        subject=place.subject,
        event_name=place.event_name,
        form_name=place.form_name,
        values=values,
        status=record.status if record is not None else 0,
        instance=place.instance,
        expected_version=record.version if record is not None else None,
        reason=reason,
    )


def _require_entry(actor, subject: Subject) -> None:
    if not access.may_act_at_site(actor, "enter_data", subject.study, subject.site):
        raise PermissionDenied(f"You may not enter data for {subject}.")
    if not Disclosure.for_user(actor, subject.study).identified:
        raise PermissionDenied(NOT_VISIBLE)


def attach(*, actor, place: Place, upload, reason: str = API_REASON) -> StoredFile:
    """Keep `upload` and put it into the file field at `place` (replacing the file there): one
    record save, audited. Refused before anything is kept for a user who may not enter data there."""
    require_actor(actor)
    _require_entry(actor, place.subject)
    _check_field(place)
    stored = store(actor=actor, subject=place.subject, upload=upload)
    with transaction.atomic():
        _write(actor, place, record_at(place), stored.reference, reason)
    return stored


def detach(*, actor, place: Place, reason: str = DELETE_REASON) -> StoredFile:
    """Take the file off the field at `place` (its content stays for the audit trail)."""
    require_actor(actor)
    _require_entry(actor, place.subject)
    _check_field(place)
    with transaction.atomic():
        record = record_at(place)
        current = on_record(record, place.field)
        if current is None:
            raise Http404("There is no file to delete for this record and field.")
        _write(actor, place, record, None, reason)
    return current


def on_record(record: FormRecord | None, field: str) -> StoredFile | None:
    """The file a record's field holds now (None: none)."""
    key = file_id(record.data.get(field)) if record is not None else None
    if key is None or record is None:
        return None
    return StoredFile.objects.filter(pk=key, subject_id=record.subject_id).first()


# ---------------------------------------------------------------------------- reading


def readable(user, stored: StoredFile) -> StoredFile:
    """`stored` if `user` may read it: 404 unless they see its study and subject's site, 403 in
    the de-identified world (see NOT_VISIBLE)."""
    study = stored.study
    if not access.subjects_visible_to(user, study).filter(pk=stored.subject_id).exists():
        raise Http404("No such file.")
    if not may_download(user, study):
        raise PermissionDenied(NOT_VISIBLE)
    return stored


def may_download(user, study) -> bool:
    """True when `user`'s role lets them read file contents in `study` (the identified world); the
    download view and an export with file contents both ask this."""
    return Disclosure.for_user(user, study).identified


def get_for_user(user, key) -> StoredFile:
    """The stored file with id `key` (a UUID or its text) that `user` may read (see `readable`)."""
    try:
        pk = uuid.UUID(str(key))
    except ValueError:
        raise Http404("No such file.") from None
    stored = StoredFile.objects.select_related("study").filter(pk=pk).first()
    if stored is None:
        raise Http404("No such file.")
    return readable(user, stored)


def open_content(stored: StoredFile):
    """The content, opened for reading through the storage API."""
    return storage().open(stored.storage_name, "rb")


def references(data) -> set[uuid.UUID]:
    """Every file id a record's values (or a repeating group's rows) hold."""
    found: set[uuid.UUID] = set()
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else [data]
    for value in values:
        if isinstance(value, dict | list):
            found |= references(value)
        else:
            key = file_id(value)
            if key is not None:
                found.add(key)
    return found


def names(keys) -> dict[uuid.UUID, str]:
    """File names by id, for showing (through the disclosure policy) where a record holds a reference."""
    return dict(StoredFile.objects.filter(pk__in=list(keys)).values_list("pk", "name"))
