"""De-identified copies to the research image archive: STOW-RS to a configured DICOMweb server
(dicomweb-client), recorded per instance (PublishedInstance).

`record` notes the copies a de-identification run saved to the images storage (sharing.py) as
waiting for a destination; `publish` sends what is waiting or failed, reading each copy from the
storage, so any worker on any host can do it. An instance already in the archive is not sent again,
and a re-run of the de-identification gives the same UIDs (pseudonyms.remap_uid), so running both
again is harmless: a failure is retried by running again (the ingest job's "Run again", or
`manage.py publish_dicom`).
"""

from __future__ import annotations

from collections.abc import Callable

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from capture import storage
from capture.audit.services import record_event
from capture.studies.models import Study, Subject

from . import dicomweb, services
from .models import PublishedInstance

BATCH = 16  # instances per STOW-RS request
PUBLISH = "imaging.publish"


def record(*, study: Study, destination: str, copies: list[dict]) -> int:
    """Note `copies` (CopyReport.copies) as waiting for `destination`; those already in the archive
    stay published. Returns how many wait now."""
    dicomweb.server_url(destination)  # an unknown destination is refused before anything is noted
    subjects = {s.subject_id: s for s in Subject.objects.filter(study=study)}
    with transaction.atomic():
        for copy in copies:
            row, created = PublishedInstance.objects.get_or_create(
                study=study,
                destination=destination,
                sop_uid=copy["sop_uid"],
                defaults={
                    "subject": subjects[copy["subject"]],
                    "study_uid": copy["study_uid"],
                    "series_uid": copy["series_uid"],
                    "storage_name": copy["name"],
                },
            )
            if not created and row.storage_name != copy["name"]:
                row.storage_name = copy["name"]
                row.save(update_fields=["storage_name", "updated_at"])
    return waiting(study, destination).count()


def waiting(study: Study, destination: str):
    return PublishedInstance.objects.filter(study=study, destination=destination).exclude(
        status=PublishedInstance.PUBLISHED
    )


def publish(*, actor, study: Study, destination: str, progress: Callable | None = None) -> dict:
    """Send every waiting or failed instance of `study` to `destination`; one audit event."""
    services.require(actor, study, "export_deidentified")
    url = dicomweb.server_url(destination)
    rows = list(waiting(study, destination).order_by("study_uid", "series_uid", "sop_uid"))
    client = DICOMwebClient(url=url, timeout=60)
    # A busy archive gets three tries, 0.2 s and 0.4 s apart; what still fails waits for a re-run.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
    outcome: dict = {"destination": destination, "published": 0, "failed": 0, "errors": []}
    for start in range(0, len(rows), BATCH):
        _send(client, rows[start : start + BATCH], outcome)
        if progress is not None:
            progress(min(start + BATCH, len(rows)), len(rows), f"Sending to {destination}")
    with transaction.atomic():
        record_event(
            actor=actor,
            study=study,
            action=PUBLISH,
            object_type="imaging",
            object_id=destination,
            object_label=url[:255],
            after={k: outcome[k] for k in ("destination", "published", "failed")},
        )
    outcome["errors"] = outcome["errors"][:20]
    return outcome


def _send(client: DICOMwebClient, batch: list[PublishedInstance], outcome: dict) -> None:
    datasets, ready = [], []
    for row in batch:
        try:
            with (
                storage.reachable(f"read {row.storage_name}"),
                storage.get(storage.IMAGES).open(row.storage_name, "rb") as handle,
            ):
                datasets.append(pydicom.dcmread(handle))
            ready.append(row)
        except (FileNotFoundError, InvalidDicomError, storage.StorageUnavailableError) as exc:
            _failed(row, f"the de-identified copy could not be read ({exc}); de-identify again", outcome)
    if not datasets:
        return
    try:
        response = client.store_instances(datasets)
    except (requests.RequestException, OSError) as exc:
        for row in ready:
            _failed(row, f"STOW-RS failed: {exc.__class__.__name__}: {str(exc)[:300]}", outcome)
        return
    refused = _failed_uids(response)
    now = timezone.now()
    for row in ready:
        if row.sop_uid in refused:
            _failed(row, f"the archive refused it (failure reason {refused[row.sop_uid]})", outcome)
            continue
        row.status, row.error, row.published_at = PublishedInstance.PUBLISHED, "", now
        row.attempts += 1
        row.save(update_fields=["status", "error", "published_at", "attempts", "updated_at"])
        outcome["published"] += 1


def _failed(row: PublishedInstance, error: str, outcome: dict) -> None:
    row.status, row.error = PublishedInstance.FAILED, error
    row.attempts += 1
    row.save(update_fields=["status", "error", "attempts", "updated_at"])
    outcome["failed"] += 1
    outcome["errors"].append({"sop_uid": row.sop_uid, "error": error})


def _failed_uids(response: Dataset | None) -> dict[str, str]:
    """SOP Instance UID -> failure reason, from the STOW-RS response's FailedSOPSequence."""
    if response is None or "FailedSOPSequence" not in response:
        return {}
    return {
        str(item.get("ReferencedSOPInstanceUID", "")): str(item.get("FailureReason", "?"))
        for item in response.FailedSOPSequence
    }


def archive_links(study: Study, study_uids: list[str]) -> dict[str, list[dict]]:
    """De-identified StudyInstanceUID -> the archives holding its instances, with the study's
    DICOMweb (WADO-RS) address there and how many instances were sent."""
    known = dicomweb.servers()
    found: dict[str, list[dict]] = {}
    rows = (
        PublishedInstance.objects.filter(
            study=study, study_uid__in=study_uids, status=PublishedInstance.PUBLISHED
        )
        .values_list("study_uid", "destination")
        .order_by("study_uid", "destination")
    )
    counts: dict[tuple[str, str], int] = {}
    for uid, destination in rows:
        counts[(uid, destination)] = counts.get((uid, destination), 0) + 1
    for (uid, destination), n in counts.items():
        base = known.get(destination)
        found.setdefault(uid, []).append(
            {
                "destination": destination,
                "instances": n,
                "url": f"{base.rstrip('/')}/studies/{uid}" if base else None,
            }
        )
    return found
