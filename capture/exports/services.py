"""Exporting a dataset: who may, what is written, and the record of it.

- `request_export` (web, API): checks the right and the selection now, so mistakes are
  reported at once, audits the request and starts a background job (`jobs.run_export`).
- `export_dataset` (the job, `manage.py export_dataset`): checks the right again (a role may
  have changed since), builds the tables, runs the writers, adds the codebook and the
  provenance manifest, zips them under a temporary name, renames the zip when it is complete,
  and audits the export with the SHA-256 of every file.

Rights (capture/studies/roles.py): `export_deidentified` for any export; an identified export
(identifier items, real dates) also needs `export_identified` and a reason. A statistician
therefore never receives identifiers, whichever path they take: the check is here, below
every caller.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import logging
import math
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from capture.audit.services import record_event
from capture.cells import neutralise
from capture.definitions.models import DataElement, FormDefinition
from capture.files.exports import FileContents
from capture.files.services import NOT_VISIBLE, may_download
from capture.studies import access
from capture.studies.models import Study

from .builder import DatasetBuilder
from .codebook import CODEBOOK_FIELDS, rows_for
from .outputs import Output, check_some_written, open_outputs
from .spec import ExportSpec
from .writers.odm import validate as validate_odm

# Validating ODM parses the whole file; above this size the manifest says it was not checked.
ODM_VALIDATE_MAX_BYTES = 200 * 1024 * 1024
COMPRESSED = (".parquet", ".xlsx")  # stored in the zip as they are

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    path: Path
    manifest: dict


def authorise(actor, study: Study, spec: ExportSpec) -> None:
    """Raise PermissionDenied unless `actor` may make this export of `study`."""
    if not access.can(actor, access.VIEW, study) or not access.can(actor, "export_deidentified", study):
        raise PermissionDenied(
            f"Your role in {study.name} does not allow exports. A study administrator can give you the "
            "statistician or data manager role."
        )
    if spec.identified and not access.can(actor, "export_identified", study):
        raise PermissionDenied(
            f"Your role in {study.name} allows de-identified exports only. Untick 'identified export' "
            "(identifiers are left out and dates shifted), or ask the PI for the export."
        )
    if spec.include_files and not may_download(actor, study):
        # The download view's rule (capture/files/services.readable): no download, no contents.
        raise PermissionDenied("File contents are not exported for your role. " + NOT_VISIBLE)


def request_export(*, actor, study: Study, spec: ExportSpec):
    """Check, audit and queue an export; returns its Job."""
    from capture.jobs.services import start_job

    spec.check()
    authorise(actor, study, spec)
    builder = DatasetBuilder(study=study, user=actor, spec=spec)  # reports a bad selection now
    title = f"{'Identified' if spec.identified else 'De-identified'} {spec.layout} export: " + ", ".join(
        spec.formats
    )
    with transaction.atomic():
        job = start_job(
            actor=actor,
            study=study,
            kind="export",
            title=title,
            handler="capture.exports.jobs.run_export",
            params={"spec": spec.to_dict()},
        )
        record_event(
            actor=actor,
            study=study,
            action="export.request",
            object_type="job",
            object_id=job.pk,
            object_label=title,
            after={"spec": spec.to_dict(), "subjects": builder.subject_total},
            reason=spec.reason,
        )
    return job


def export_dataset(
    *,
    actor,
    study: Study,
    spec: ExportSpec,
    output_dir: Path,
    progress: Callable | None = None,
    job_id: str = "",
) -> ExportResult:
    """Write the export as one zip in `output_dir`; return its path and manifest."""
    spec.check()
    authorise(actor, study, spec)
    builder = DatasetBuilder(study=study, user=actor, spec=spec)
    started = timezone.now()
    export_id = job_id or str(uuid.uuid4())
    output_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".export-", dir=output_dir))
    contents = None
    if spec.include_files:  # planned first: the file columns name the paths it gives
        contents = FileContents(builder, builder.deid.file_paths)
        contents.plan()
    try:
        manifest = _write(builder, workdir, progress)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        kind = "identified" if spec.identified else "deidentified"
        name = f"{study.slug}-{kind}-{spec.layout}-{stamp}-{export_id[:8]}.zip"
        manifest.update(_provenance(builder, actor, started, export_id))
        partial = output_dir / f".{name}.partial"
        _bundle(partial, workdir, manifest, contents)
        final = output_dir / name
        partial.rename(final)  # a complete file appears under its name, or none does
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for leftover in output_dir.glob(f".{study.slug}-*-{export_id[:8]}.zip.partial"):
            leftover.unlink(missing_ok=True)
    bundle_hash = _sha256(final)
    with transaction.atomic():
        record_event(
            actor=actor,
            study=study,
            action="export.create",
            object_type="export",
            object_id=export_id,
            object_label=name,
            after={
                "spec": spec.to_dict(),
                "subjects": manifest["subjects"],
                "tables": manifest["tables"],
                "files": manifest["files"],
                "format_results": manifest["format_results"],
                "bundle": {"name": name, "sha256": bundle_hash},
            },
            reason=spec.reason,
        )
    return ExportResult(final, manifest)


def _bundle(partial: Path, workdir: Path, manifest: dict, contents: FileContents | None) -> None:
    """Zip the written files, the file contents (if asked) and the manifest listing them all."""
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        for entry in manifest["files"]:
            # Parquet (zstd) and XLSX (itself a zip) are compressed already: deflating them
            # again gains nothing and costs time. Text: level 1, a sixth of level 6's time for
            # a third more bytes.
            stored = entry["name"].endswith(COMPRESSED)
            bundle.write(
                workdir / entry["name"],
                entry["name"],
                compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
            )
        if contents is not None:
            manifest["files"].extend(contents.write(bundle))
        bundle.writestr("manifest.json", json.dumps(manifest, indent=2, default=str))


def _write(builder: DatasetBuilder, workdir: Path, progress: Callable | None) -> dict:
    spec = builder.spec
    outputs = open_outputs(spec.formats, workdir, builder)
    tabular = [out for out in outputs if out.fmt != "odm"]
    tables = builder.tables() if tabular else []
    chunks = max(1, math.ceil(builder.subject_total / builder.chunk_size))
    total = chunks * (len(tables) + (1 if "odm" in spec.formats else 0))
    done = 0
    subjects_exported = 0
    # A chunk of a wide table is hundreds of thousands of small objects (decoded records, cells),
    # all freed by reference counting: the cyclic collector's passes over them found nothing
    # and took a fifth of an export's time. Paused while the tables are written; no cycles pile
    # up meanwhile (measured: the same few from imported modules after 300 or 2,000 subjects).
    with _collector_paused():
        for table in tables:
            # Each format on its own (outputs.py): one failing leaves the others writing.
            for out in tabular:
                out.run(methodcaller("begin", table), table.name)
            table.rows_written = 0
            for rows in table.batches():
                for out in tabular:
                    out.run(methodcaller("write", table, rows), table.name)
                table.rows_written += len(rows)
                done += 1
                if progress:
                    progress(min(done, total), total, f"{table.title}: {table.rows_written} rows")
            for out in tabular:
                out.run(methodcaller("end", table), table.name)
            if table.name in ("dataset", "subjects"):
                subjects_exported = table.rows_written
    written = [out.fmt for out in outputs if out.ok]
    codebook = [
        row
        for table in tables
        for row in rows_for(table.name, table.columns, builder.study.missing_codes, written)
    ]
    for out in outputs:
        out.run(methodcaller("finish", codebook))
    odm_valid = _check_odm(outputs, progress, total)
    check_some_written(outputs)
    codebook_path = workdir / "codebook.csv"
    with codebook_path.open("w", newline="", encoding="utf-8-sig") as handle:
        out_csv = csv.DictWriter(handle, fieldnames=CODEBOOK_FIELDS)
        out_csv.writeheader()
        # Labels and questions come from definitions anyone with a file could have written.
        out_csv.writerows({k: neutralise(v) for k, v in row.items()} for row in codebook)
    files = [path for out in outputs for path in out.files] + [codebook_path]
    return {
        "subjects": subjects_exported if tables else builder.subject_total,
        "tables": [{"name": t.name, "rows": t.rows_written, "columns": len(t.columns)} for t in tables],
        "files": [{"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files],
        "format_results": [out.report() for out in outputs],
        "odm_schema_valid": odm_valid,
    }


def _check_odm(outputs: list[Output], progress: Callable | None, total: int) -> bool | None:
    """Validate the ODM file against the schema (if small enough); a file that fails is our bug,
    reported as the ODM format's failure."""
    odm = next((out for out in outputs if out.fmt == "odm" and out.ok), None)
    if odm is None:
        return None
    path = odm.writer.path  # type: ignore[union-attr]  # the ODM writer writes one file
    if path.stat().st_size > ODM_VALIDATE_MAX_BYTES:
        return None
    if progress:
        progress(total, total, "Checking the ODM file against the ODM 1.3.2 schema")
    errors = validate_odm(path)
    if errors:
        odm.error = "ODM was not written: the file does not validate: " + "; ".join(errors[:5])
        log.error("ODM export does not validate: %s", errors[:5])
        return False
    return True


@contextmanager
def _collector_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _provenance(builder: DatasetBuilder, actor, started, export_id: str) -> dict:
    spec = builder.spec
    sel = builder.selection
    forms = FormDefinition.objects.filter(
        name__in=list(sel.form_refs), version__in=[r.split("@")[1] for r in sel.form_refs.values()]
    )
    form_hashes = {f.ref: f.content_hash for f in forms if sel.form_refs.get(f.name) == f.ref}
    refs = {(i.element.public_id, i.element.version) for items in sel.forms.values() for i in items}
    elements = {
        e.ref: e.content_hash
        for e in DataElement.objects.filter(public_id__in=[r[0] for r in refs])
        if (e.public_id, e.version) in refs
    }
    schedule = builder.study.schedule
    return {
        "export_id": export_id,
        "capture_version": capture_version(),
        "created_at": started.isoformat(),
        "finished_at": timezone.now().isoformat(),
        "created_by": {
            "username": actor.get_username(),
            "role": access.role_of(actor, builder.study) or "superuser",
        },
        "study": {"slug": builder.study.slug, "name": builder.study.name},
        "layout": spec.layout,
        "formats": spec.formats,
        "filters": spec.to_dict(),
        "deidentification": {
            "identified": spec.identified,
            "reason": spec.reason,
            "dates": {
                "shift": "shifted by each subject's date shift",
                "offset": "days since enrolment",
                "none": "real dates",
            }[spec.date_mode],
            "subject_ids": "re-hashed with a key made for this export and not kept"
            if spec.rehash_ids
            else "study subject ids",
            "imaging_uids": "remapped with this export's key (not kept)"
            if spec.rehash_ids
            else "the imaging app's de-identified UIDs",
            "dropped_items": [{"item": d.item, "reason": d.reason} for d in sel.dropped],
        },
        "sites": sorted(access.sites_visible_to(actor, builder.study).values_list("code", flat=True)),
        "definitions": {
            "schedule": {"ref": schedule.ref, "content_hash": schedule.content_hash},
            "forms": form_hashes,
            "elements": dict(sorted(elements.items())),
        },
        "missing_codes": builder.study.missing_codes,
        "reproduce": reproduce_command(builder.study, actor, spec),
    }


def reproduce_command(study: Study, actor, spec: ExportSpec) -> str:
    parts = [
        "python manage.py export_dataset",
        f"--study {study.slug}",
        f"--user {actor.get_username()}",
        f"--format {','.join(spec.formats)}",
        f"--layout {spec.layout}",
        f"--checkboxes {spec.checkboxes}",
        f"--dates {spec.date_mode}",
    ]
    for flag, values in (
        ("--forms", spec.forms),
        ("--items", spec.items),
        ("--events", spec.events),
        ("--sites", spec.sites),
        ("--subjects", spec.subjects),
    ):
        if values:
            parts.append(f"{flag} {','.join(values)}")
    for flag, on in (
        ("--labels", spec.labels),
        ("--rehash-ids", spec.rehash_ids),
        ("--drop-free-text", spec.drop_free_text),
        ("--no-imaging", not spec.imaging),
        ("--include-files", spec.include_files),
        ("--measurements", spec.measurements),
    ):
        if on:
            parts.append(flag)
    if spec.cohort:
        parts.append(f"--cohort {json.dumps(spec.cohort)}")
    if spec.identified:
        parts.append(f"--identified --reason {json.dumps(spec.reason)}")
    return " ".join(parts)


def capture_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("capture")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
