"""The background job that writes an export (started by services.request_export).

The bundle is written in a local work folder, then saved whole to the results storage under
exports/<study id>/<name>; only after that does the job offer it (Job.result_file). An object store
that fails the save fails the job with a message, leaves no object, and the job can be run again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from capture import storage
from capture.jobs.models import Job
from capture.jobs.services import STALE_AFTER, JobError

from . import services
from .outputs import ExportFailedError, summary
from .spec import ExportSpec

EXPORT_DIR = "exports"


def work_dir() -> Path:
    """This host's local folder for bundles being written (one per host, cleaned by clear_leftovers)."""
    return Path(tempfile.gettempdir()) / "capture-exports"


def run_export(job: Job, progress) -> dict:
    spec = ExportSpec.from_dict(job.params["spec"])
    prefix = f"{EXPORT_DIR}/{job.study_id}"
    local = work_dir()
    clear_leftovers(local, str(job.pk))
    clear_stored_leftovers(prefix, str(job.pk))
    try:
        result = services.export_dataset(
            actor=job.created_by,
            study=job.study,
            spec=spec,
            output_dir=local,
            progress=progress,
            job_id=str(job.pk),
        )
    except ExportFailedError as exc:
        raise JobError(str(exc)) from exc
    try:
        name = storage.save_file(storage.RESULTS, f"{prefix}/{result.path.name}", result.path)
    finally:
        result.path.unlink(missing_ok=True)
    # Only now, with the zip complete under its final name, does the job offer it.
    Job.objects.filter(pk=job.pk).update(result_file=name)
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


def clear_stored_leftovers(prefix: str, job_id: str) -> list[str]:
    """Remove this job's bundles from the results storage: an earlier attempt killed between the
    save and the job's update left one that was never offered."""
    removed = [name for name in storage.names_under(storage.RESULTS, prefix) if f"-{job_id[:8]}.zip" in name]
    for name in removed:
        storage.delete(storage.RESULTS, name)
    return removed


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
