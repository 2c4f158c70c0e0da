"""The storage layer: every file Capture keeps is saved, opened, listed, streamed and deleted here,
through Django's named storages (STORAGES; capture/storage_settings.py reads CAPTURE_STORAGE).

Nothing else in capture/ builds a path from MEDIA_ROOT (tests/storage/test_no_media_paths.py): on
object storage there is no such path, and a worker on another host would not see it. A library that
needs a real file (a workbook parser, a zip reader) gets a local copy in a temporary folder that is
removed after use (`local_copy`).

    UPLOADS  imports/<study>/<uuid>.<ext>, imaging-uploads/<uuid>.zip
    RESULTS  exports/<study id>/<bundle>.zip (Job.result_file)
    IMAGES   deid/<study>/<subject>/<study uid>/<series uid>/<sop uid>.dcm

An object store that cannot be reached raises StorageUnavailableError (a ValidationError, so a page
shows it as a form error and a job fails with it, to be run again).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

UPLOADS = "uploads"
RESULTS = "results"
IMAGES = "images"
COPY_CHUNK = 1024 * 1024


class StorageUnavailableError(ValidationError):
    """The file store did not answer; the message says so and that the work can be run again."""


class ObjectStorage(S3Storage):
    """django-storages' S3 backend with timeouts and retries a web request and a job can live with:
    an object store that is down fails an upload in seconds, not minutes."""

    def __init__(self, **options):
        options.setdefault(
            "client_config",
            Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": options.get("addressing_style")},
                signature_version=options.get("signature_version"),
            ),
        )
        super().__init__(**options)


def get(kind: str) -> Storage:
    return storages[kind]


def is_object_storage(kind: str) -> bool:
    return isinstance(get(kind), S3Storage)


@contextmanager
def reachable(what: str) -> Iterator[None]:
    """Turn an object store's failure into StorageUnavailableError with what was being done."""
    try:
        yield
    except (BotoCoreError, ClientError, ConnectionError) as exc:
        raise StorageUnavailableError(
            f"The file store could not {what} ({exc.__class__.__name__}: {str(exc)[:200]}). Nothing was "
            "kept; check that the object store (CAPTURE_STORAGE) is reachable, then try again."
        ) from exc


def save(kind: str, name: str, content) -> str:
    """Save `content` (a File, an uploaded file or bytes) under `name`; return the name it got.
    On object storage an object appears whole or not at all; a local file half written by a
    failure is removed."""
    storage = get(kind)
    if isinstance(content, bytes):
        content = File(io.BytesIO(content), name=name)
    try:
        with reachable(f"save {name}"):
            return storage.save(name, content)
    except BaseException:
        _forget(storage, name)
        raise


def save_file(kind: str, name: str, path: Path) -> str:
    """Save the local file `path` under `name`."""
    with path.open("rb") as handle:
        return save(kind, name, File(handle, name=name))


def _forget(storage: Storage, name: str) -> None:
    # Best effort after a failed save: the original error is what the caller must see.
    with contextlib.suppress(Exception):
        storage.delete(name)


def exists(kind: str, name: str) -> bool:
    if not name:
        return False
    with reachable(f"look for {name}"):
        return get(kind).exists(name)


def delete(kind: str, name: str) -> None:
    with reachable(f"delete {name}"):
        get(kind).delete(name)


def names_under(kind: str, prefix: str) -> list[str]:
    """Every file name under the folder `prefix` (one level), as full names."""
    storage = get(kind)
    with reachable(f"list {prefix}"):
        if not _folder_exists(storage, prefix):
            return []
        _dirs, files = storage.listdir(prefix)
    return [f"{prefix.rstrip('/')}/{file}" for file in files]


def _folder_exists(storage: Storage, prefix: str) -> bool:
    # A local storage's listdir fails on a missing folder; an object store has no folders to miss.
    return isinstance(storage, S3Storage) or storage.exists(prefix)


@contextmanager
def local_copy(kind: str, name: str, *, missing: str = "") -> Iterator[Path]:
    """A local file with the content of `name`, for libraries that read paths. On a local storage
    it is the stored file itself; else a copy in a temporary folder, removed afterwards."""
    storage = get(kind)
    if not exists(kind, name):
        raise ValidationError(missing or f"{name} is no longer stored.")
    if not isinstance(storage, S3Storage):
        yield Path(storage.path(name))  # safe_join: a name cannot leave the storage's folder
        return
    with tempfile.TemporaryDirectory(prefix="capture-copy-") as work:
        target = Path(work) / Path(name).name
        with reachable(f"read {name}"), storage.open(name, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)
        yield target


def download_response(kind: str, name: str, filename: str) -> HttpResponseBase:
    """The stored file as a download: streamed from the storage, or (on object storage with
    CAPTURE["STORAGE_SIGNED_URLS"]) a redirect to a link signed for a few minutes. The caller has
    checked the permission; the link is not guessable and expires."""
    if not exists(kind, name):
        raise Http404("The file is gone.")
    storage = get(kind)
    if isinstance(storage, S3Storage) and settings.CAPTURE.get("STORAGE_SIGNED_URLS"):
        with reachable(f"sign a link to {name}"):
            url = storage.url(
                name, parameters={"ResponseContentDisposition": content_disposition_header(True, filename)}
            )
        return HttpResponseRedirect(url)
    with reachable(f"open {name}"):
        handle = storage.open(name, "rb")
    return FileResponse(handle, as_attachment=True, filename=filename)
