"""The background job that writes an export (started by services.request_export)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from capture.jobs.models import Job

from . import services
from .spec import ExportSpec

EXPORT_DIR = "exports"


def run_export(job: Job, progress) -> dict:
    spec = ExportSpec.from_dict(job.params["spec"])
    root = Path(settings.MEDIA_ROOT)
    output_dir = root / EXPORT_DIR / str(job.study_id)
    result = services.export_dataset(
        actor=job.created_by,
        study=job.study,
        spec=spec,
        output_dir=output_dir,
        progress=progress,
        job_id=str(job.pk),
    )
    # Only now, with the zip complete under its final name, does the job offer it.
    Job.objects.filter(pk=job.pk).update(result_file=str(result.path.relative_to(root)))
    manifest = result.manifest
    return {
        "file": result.path.name,
        "subjects": manifest["subjects"],
        "tables": manifest["tables"],
        "files": manifest["files"],
    }
