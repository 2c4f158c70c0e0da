"""Where Capture keeps its files, read from the environment for settings (no Django imports beyond
ImproperlyConfigured: settings modules import this before Django is set up).

Four named storages (capture/storage.py says what goes in each):

    uploads        import sheets and DICOM zips, until they are imported
    results        export bundles and other job results
    images         de-identified DICOM copies
    capture_files  file fields' contents (capture/files), under files/<study>/

`CAPTURE_STORAGE` picks the backend of all four:

    (unset)                     a local folder, MEDIA_ROOT (one host only)
    file:///srv/capture/media   a local (or network-mounted) folder
    s3://bucket/prefix          S3-compatible object storage through django-storages (AWS S3, MinIO,
                                Ceph RGW), with CAPTURE_STORAGE_ENDPOINT (e.g. https://minio:9000;
                                unset for AWS), CAPTURE_STORAGE_REGION, and the credentials boto3
                                finds (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an instance role)

An object's name is the same in every backend ("imports/<study>/<uuid>.csv"), so files written
under MEDIA_ROOT before object storage are read from the bucket after `aws s3 sync MEDIA_ROOT
s3://bucket/prefix` (docs/deploy.md).
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

KINDS = ("uploads", "results", "images", "capture_files")
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"
OBJECT_BACKEND = "capture.storage.ObjectStorage"
HOW = "write CAPTURE_STORAGE=s3://bucket/prefix or file:///absolute/folder (docs/deploy.md)"


def storages(url: str | None = None) -> dict[str, dict]:
    """The named storages of STORAGES for `url` (default: the CAPTURE_STORAGE variable)."""
    url = (os.environ.get("CAPTURE_STORAGE", "") if url is None else url).strip()
    backend = _backend(url)
    return {kind: dict(backend, OPTIONS=dict(backend["OPTIONS"])) for kind in KINDS}


def _backend(url: str) -> dict:
    if not url:
        # No location: FileSystemStorage follows MEDIA_ROOT, also when a test overrides it.
        return {"BACKEND": LOCAL_BACKEND, "OPTIONS": {"allow_overwrite": True}}
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if not parsed.path.startswith("/") or parsed.netloc:
            raise ImproperlyConfigured(f"CAPTURE_STORAGE={url!r}: {HOW}.")
        return {"BACKEND": LOCAL_BACKEND, "OPTIONS": {"location": parsed.path, "allow_overwrite": True}}
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ImproperlyConfigured(f"CAPTURE_STORAGE={url!r} names no bucket: {HOW}.")
        return {"BACKEND": OBJECT_BACKEND, "OPTIONS": s3_options(parsed.netloc, parsed.path.strip("/"))}
    raise ImproperlyConfigured(f"CAPTURE_STORAGE={url!r}: unknown scheme {parsed.scheme!r}; {HOW}.")


def s3_options(bucket: str, prefix: str) -> dict:
    endpoint = os.environ.get("CAPTURE_STORAGE_ENDPOINT", "").strip() or None
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CAPTURE_STORAGE_ENDPOINT={endpoint!r}: give the object store's URL, e.g. https://minio.internal:9000."
        )
    options = {
        "bucket_name": bucket,
        "location": prefix,
        "endpoint_url": endpoint,
        "region_name": os.environ.get("CAPTURE_STORAGE_REGION", "").strip() or None,
        "signature_version": "s3v4",
        # MinIO and Ceph serve buckets under the path; AWS answers both ways.
        "addressing_style": "path" if endpoint else None,
        # Names are unique (uuids, job ids, DICOM UIDs): writing one again replaces it, which makes a
        # re-run of a de-identification idempotent.
        "file_overwrite": True,  # (allow_overwrite on a local folder)
        "default_acl": None,
        # Signed download links live five minutes (CAPTURE["STORAGE_SIGNED_URLS"]).
        "querystring_expire": 300,
        # An object read whole (an upload copied for parsing) spills to disk past 16 MB.
        "max_memory_size": 16 * 1024 * 1024,
    }
    return {key: value for key, value in options.items() if value is not None}
