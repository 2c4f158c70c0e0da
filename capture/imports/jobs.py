"""The background job of an import: a dry run or a commit of one uploaded file.

Started by the import page through `capture.jobs.services.start_job`; the job's progress bar follows
`progress`. The commit writes in one transaction (services.run_import), so a worker killed midway
leaves the database as it was and the job is marked failed; running it again completes it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from capture.jobs.services import JobError

from . import measurement_sheet, services
from .mapping import Mapping
from .measurement_mapping import SheetMapping
from .models import ImportUpload


def run_import(job, progress) -> dict:
    upload = ImportUpload.objects.filter(pk=job.params["upload"], study=job.study).first()
    if upload is None:
        raise JobError("The uploaded file is gone; upload it again.")
    commit = bool(job.params.get("commit"))
    measurements = upload.kind == ImportUpload.MEASUREMENTS
    run = measurement_sheet.run_import if measurements else services.run_import
    mapping = (SheetMapping if measurements else Mapping).from_spec(job.params["spec"])
    try:
        with services.upload_path(upload) as path:  # a local copy when the upload is on object storage
            report = run(
                actor=job.created_by,
                study=job.study,
                path=path,
                mapping=mapping,  # type: ignore[arg-type]  # the mapping of the upload's kind
                commit=commit,
                label=upload.original_name,
                upload=upload,
                progress=progress,
            )
    except services.ImportRefusedError as exc:
        raise JobError(exc.messages[0]) from None
    except ValidationError as exc:  # the file cannot be read (too large, a cell too long, corrupt)
        raise JobError(" ".join(exc.messages)) from None
    enrolment = report.get("enrolment")
    return {
        "upload": str(upload.pk),
        "commit": commit,
        "counts": report["counts"],
        "enrolled": enrolment["count"] if enrolment else None,
    }
