"""Run an import: read the file, build the plan, and write it — or only report it (a dry run).

A plan with any problem writes nothing (ImportRefusedError, with the whole report). A plan without
one is written in one transaction through `capture.records.bulk.write_records` (each record audited
as `record.create` / `record.update`), with one `import.commit` audit event for the file; a worker
killed midway leaves the database as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from capture.audit.services import record_event
from capture.records.bulk import write_records
from capture.studies.models import Study
from capture.studies.services import require_writable

from . import readers
from .mapping import Mapping
from .models import ImportUpload
from .plan import build_plan
from .report import ImportRefusedError, Plan, Progress, no_progress
from .uploads import check_may_import


def read(path: Path, mapping: Mapping, name: str = "") -> readers.Table:
    """Read the file as the mapping says; a ReadError becomes a ValidationError naming the file as
    the user knows it (`name`), not as it is stored."""
    try:
        return readers.read_table(path, **mapping.reader_options())
    except readers.ReadError as exc:
        stored = Path(path)  # a CSV's sheet is named after the file: the stored name's stem
        message = (
            str(exc).replace(stored.name, name).replace(stored.stem, Path(name).stem) if name else str(exc)
        )
        raise ValidationError(message) from None


def run_import(
    *,
    actor,
    study: Study,
    path: Path,
    mapping: Mapping,
    commit: bool,
    label: str = "",
    upload: ImportUpload | None = None,
    progress: Progress = no_progress,
) -> dict:
    """Dry run (commit=False) or import a file. Returns the report; a commit with any problem raises
    ImportRefusedError and writes nothing."""
    check_may_import(actor, study)
    require_writable(study, "import data")  # the study's status (capture/studies/services.py)
    progress(0, None, "Reading the file")
    label = label or Path(path).name
    table = read(path, mapping, label)
    plan = build_plan(actor=actor, study=study, table=table, mapping=mapping, progress=progress)
    if not commit or plan.errors:
        report = plan.report()
        _remember(upload, report, mapping, ImportUpload.CHECKED)
        if commit:
            raise ImportRefusedError(report)
        return report
    progress(len(table.rows), len(table.rows), f"Writing {len(plan.writes)} record(s)")
    return _write(actor, study, plan, path=path, mapping=mapping, label=label, upload=upload)


def _remember(upload: ImportUpload | None, report: dict, mapping: Mapping, state: str) -> None:
    """Keep the report and the mapping with the upload, for its page."""
    if upload is not None:
        ImportUpload.objects.filter(pk=upload.pk).update(report=report, spec=mapping.to_spec(), state=state)


@transaction.atomic
def _write(actor, study: Study, plan: Plan, *, path, mapping: Mapping, label: str, upload) -> dict:
    report = plan.report(committed=True)
    reason = f"Import of {label}"
    writes = plan.writes
    enrolled = 0
    if plan.enrolment is not None and plan.enrolment.planned:
        # The new subjects first, in the same transaction as their records: a refusal below
        # leaves neither.
        made = plan.enrolment.enrol(actor, reason)
        enrolled = len(made)
        given = {p.key: made[p.ref.pk].subject_id for p in plan.enrolment.planned.values()}
        for listed in report["enrolment"]["subjects"]:
            listed["subject_id"] = given[listed["key"]]
        writes = [replace(w, subject=made.get(w.subject.pk, w.subject)) for w in writes]
    result = write_records(actor=actor, study=study, writes=writes, reason=reason)
    report["counts"].update(
        new=result.created, changed=result.updated, unchanged=plan.unchanged + result.unchanged
    )
    if not enrolled and not result.created and not result.updated:
        # Nothing changed (the same file again): nothing to audit either.
        _remember(upload, report, mapping, ImportUpload.COMMITTED)
        return report
    digest = upload.sha256 if upload is not None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
    record_event(
        actor=actor,
        study=study,
        action="import.commit",
        object_type="import",
        object_id=upload.pk if upload is not None else digest[:16],
        object_label=label,
        after={
            "file": label,
            "sha256": digest,
            "sheet": plan.sheet,
            "mapping": mapping.to_spec(),
            "counts": report["counts"],
        },
        reason=f"Import of {label}",
    )
    _remember(upload, report, mapping, ImportUpload.COMMITTED)
    return report
