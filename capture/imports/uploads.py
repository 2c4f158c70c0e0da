"""Uploads and saved mappings: who may import, where an uploaded file is kept, and the mapping a
site used last time (offered again for its next file).

An upload is visible to who sent it and to the study's administrators; anyone else gets 404.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import transaction
from django.http import Http404

from capture import storage
from capture.audit.services import record_event
from capture.studies import access
from capture.studies.models import Site, Study

from . import readers
from .mapping import Mapping
from .models import ImportMapping, ImportUpload

PERMISSION = "import_data"
SPOOL_BYTES = 8 * 1024 * 1024  # an upload larger than this waits on local disk, not in memory


def check_may_import(actor, study: Study) -> None:
    if not access.can(actor, PERMISSION, study):
        raise PermissionDenied(f"Your role in {study.name} does not allow importing data.")


@transaction.atomic
def store_upload(*, actor, study: Study, site: Site | None, name: str, chunks) -> ImportUpload:
    """Keep an uploaded file in the uploads storage (imports/<study>/) and remember who sent it."""
    check_may_import(actor, study)
    suffix = Path(name).suffix.lower()
    if suffix not in readers.SUFFIXES:
        raise ValidationError(
            f"{name}: Capture reads {', '.join(sorted(readers.SUFFIXES))} files; save the sheet as one of them."
        )
    if site is not None and not access.sites_visible_to(actor, study).filter(pk=site.pk).exists():
        raise PermissionDenied(f"You do not work at site {site.code}.")
    rel = f"imports/{study.slug}/{uuid.uuid4().hex}{suffix}"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        size, sha256 = _spool(chunks, spool, name)
        spool.seek(0)
        rel = storage.save(storage.UPLOADS, rel, File(spool, name=rel))
    try:
        upload = ImportUpload.objects.create(
            study=study,
            site=site,
            created_by=actor,
            original_name=Path(name).name[:255],
            path=rel,
            sha256=sha256,
            size=size,
        )
    except BaseException:
        storage.delete(storage.UPLOADS, rel)  # no stored file without its row
        raise
    previous = remembered_mapping(study, site)
    if previous is not None:
        upload.mapping = previous
        upload.spec = previous.spec
        upload.save(update_fields=["mapping", "spec"])
    return upload


def _spool(chunks, out, name: str) -> tuple[int, str]:
    """Copy the upload to `out` (a local temporary file); refuse it past the size limit before
    anything reaches the storage. Returns (size, SHA-256)."""
    digest = hashlib.sha256()
    size = 0
    max_bytes = readers.limit("IMPORT_MAX_BYTES")
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ValidationError(
                f"{name} is larger than the {max_bytes / 1e6:.0f} MB limit (CAPTURE['IMPORT_MAX_BYTES']); split it."
            )
        digest.update(chunk)
        out.write(chunk)
    return size, digest.hexdigest()


@contextmanager
def upload_path(upload: ImportUpload) -> Iterator[Path]:
    """The uploaded file as a local path while the `with` block runs (readers parse paths): on
    object storage a temporary copy, removed afterwards."""
    with storage.local_copy(
        storage.UPLOADS, upload.path, missing=f"{upload.original_name} is no longer stored; upload it again."
    ) as path:
        yield path


def get_upload(user, study: Study, upload_id) -> ImportUpload:
    """An upload of the study, visible to who sent it and to study administrators; else 404."""
    upload = ImportUpload.objects.filter(study=study, pk=upload_id).select_related("site", "mapping").first()
    if upload is None or not (upload.created_by_id == user.pk or access.can(user, "manage_study", study)):
        raise Http404("No such upload.")
    return upload


def remembered_mapping(study: Study, site: Site | None) -> ImportMapping | None:
    """The mapping last saved for files from `site`, if any."""
    if site is None:
        return None
    return ImportMapping.objects.filter(study=study, site=site).order_by("-updated_at").first()


@transaction.atomic
def save_mapping(*, actor, study: Study, name: str, spec: dict, site: Site | None = None) -> ImportMapping:
    check_may_import(actor, study)
    Mapping.from_spec(spec)  # refuse a malformed mapping now, not at the next import
    name = name.strip()
    if not name:
        raise ValidationError("Give the mapping a name (for example the site and the file it is for).")
    mapping, created = ImportMapping.objects.get_or_create(study=study, name=name, defaults={"spec": spec})
    before = None if created else {"spec": mapping.spec, "site": mapping.site.code if mapping.site else None}
    mapping.spec = spec
    mapping.site = site
    mapping.updated_by = actor
    mapping.save()
    record_event(
        actor=actor,
        study=study,
        action="import_mapping.save",
        object_type="import_mapping",
        object_id=mapping.pk,
        object_label=name,
        before=before,
        after={"spec": spec, "site": site.code if site else None},
    )
    return mapping
