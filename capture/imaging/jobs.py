"""Background job handlers for imaging (run by capture.jobs)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from capture.jobs.services import JobError

from .ingest import ingest_zip

UPLOAD_DIR = "imaging-uploads"


def run_ingest(job, progress) -> dict:
    """Ingest an uploaded zip, then delete the upload: Capture keeps no image files."""
    path = Path(settings.MEDIA_ROOT) / job.params["upload"]
    if not path.is_file():
        raise JobError("The uploaded zip is gone (it is deleted after a run); upload it again.")
    try:
        report = ingest_zip(
            actor=job.created_by, study=job.study, zip_path=path, name=job.params["name"], progress=progress
        )
    except ValidationError:
        path.unlink(missing_ok=True)  # a bad upload stays bad; a crash keeps it so "Run again" works
        raise
    path.unlink(missing_ok=True)
    return report.as_dict()
