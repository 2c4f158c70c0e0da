"""The background job that writes an export (started by services.request_export)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from django.conf import settings

from capture.jobs.models import Job
from capture.jobs.services import STALE_AFTER, JobError

from . import services
from .outputs import ExportFailedError, summary
from .spec import ExportSpec

EXPORT_DIR = "exports"


def run_export(job: Job, progress) -> dict:
    spec = ExportSpec.from_dict(job.params["spec"])
    root = Path(settings.MEDIA_ROOT)
    output_dir = root / EXPORT_DIR / str(job.study_id)
    clear_leftovers(output_dir, str(job.pk))
    try:
        result = services.export_dataset(
            actor=job.created_by,
            study=job.study,
            spec=spec,
            output_dir=output_dir,
            progress=progress,
            job_id=str(job.pk),
        )
    except ExportFailedError as exc:
        raise JobError(str(exc)) from exc
    # Only now, with the zip complete under its final name, does the job offer it.
    Job.objects.filter(pk=job.pk).update(result_file=str(result.path.relative_to(root)))
    manifest = result.manifest
    formats = manifest["format_results"]
    # The job page shows the last message: which formats were written, and why any was not.
    job.refresh_from_db(fields=["total"])
    progress(job.total or 1, job.total or 1, summary(formats))
    return {
        "file": result.path.name,
        "subjects": manifest["subjects"],
        "tables": manifest["tables"],
        "files": manifest["files"],
        "formats": formats,
    }


def clear_leftovers(output_dir: Path, job_id: str, now: float | None = None) -> list[Path]:
    """Remove what a killed earlier attempt left: this job's zips (complete or partial, never offered,
    since the job offers a file only after it is complete and recorded) and any export work folder
    older than a job's heartbeat allows (its worker is dead). Returns what was removed."""
    if not output_dir.is_dir():
        return []
    removed = []
    for path in output_dir.glob(f"*-{job_id[:8]}.zip*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    cutoff = (now or time.time()) - STALE_AFTER.total_seconds()
    for work in output_dir.glob(".export-*"):
        if work.is_dir() and work.stat().st_mtime < cutoff:
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed
