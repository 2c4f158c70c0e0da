"""Background job handlers for imaging (run by capture.jobs)."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError

from capture import storage
from capture.jobs.services import JobError

from . import publish
from .ingest import ingest_zip
from .sharing import deidentify_tree

UPLOAD_DIR = "imaging-uploads"
GONE = "The uploaded zip is gone (it is deleted after a run); upload it again."


def run_ingest(job, progress) -> dict:
    """Ingest an uploaded zip (from the uploads storage, through a local copy), then delete the
    upload: Capture keeps no original image files. With params["publish"] (a DICOMweb server
    name), de-identified copies also go to the images storage and to that research archive."""
    name = job.params["upload"]
    destination = job.params.get("publish")
    if not storage.exists(storage.UPLOADS, name):
        raise JobError(GONE)
    shared: dict = {}

    def share(folder: Path) -> None:
        shared.update(_share(job, folder, destination, progress))

    try:
        with storage.local_copy(storage.UPLOADS, name, missing=GONE) as path:
            report = ingest_zip(
                actor=job.created_by,
                study=job.study,
                zip_path=path,
                name=job.params["name"],
                progress=progress,
                then=share if destination else None,
            )
    except storage.StorageUnavailableError:
        raise  # the store is down: keep the upload for "Run again"
    except ValidationError:
        storage.delete(storage.UPLOADS, name)  # a bad upload stays bad; a crash keeps it so "Run again" works
        raise
    if shared.get("failed"):
        # The upload stays: "Run again" ingests (adding nothing), de-identifies to the same names
        # and sends only what the archive does not hold yet.
        raise JobError(
            f"{shared['failed']} de-identified instances did not reach the archive {destination!r} "
            f"({shared['errors'][0]['error']}). Check that it is reachable, then run the job again."
        )
    storage.delete(storage.UPLOADS, name)
    return report.as_dict() | ({"archive": shared} if destination else {})


def _share(job, folder: Path, destination: str, progress) -> dict:
    """De-identified copies of the unpacked files to the images storage, then to the archive."""
    copies = deidentify_tree(actor=job.created_by, study=job.study, src=folder, to_storage=True)
    publish.record(study=job.study, destination=destination, copies=copies.copies)
    sent = publish.publish(actor=job.created_by, study=job.study, destination=destination, progress=progress)
    return sent | {
        "written": copies.written,
        "refused": len(copies.refused),
        "quarantined": len(copies.quarantined),
    }
