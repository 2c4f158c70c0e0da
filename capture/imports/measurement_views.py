"""The mapping page of a measurement sheet: which column holds what, the dry run's report, and the
import (both background jobs, as for form records). `views.upload_detail` hands an upload of kind
"measurements" here after its access checks (the study with `import_data`, the upload its sender's
or an administrator's)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from capture.jobs import services as jobs

from . import measurement_sheet
from .forms import DATE_FORMAT_CHOICES
from .measurement_mapping import REQUIRED, TARGETS, SheetMapping, suggest
from .models import ImportUpload
from .report import cell_text

PREVIEW_ROWS = 5
READER_KEYS = ("sheet", "header_row", "header_rows", "delimiter", "encoding")


def upload_detail(request, study, upload: ImportUpload, path):
    errors: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action", "dry_run")
        try:
            spec = _posted_spec(request.POST, dict(upload.spec))
            if action == "preview":  # other sheet or header rows: suggest the columns afresh
                spec = {k: v for k, v in spec.items() if k in READER_KEYS}
                ImportUpload.objects.filter(pk=upload.pk).update(spec=spec)
                return redirect("imports:upload", slug=study.slug, upload_id=upload.pk)
            ImportUpload.objects.filter(pk=upload.pk).update(spec=spec)
            job = jobs.start_job(
                actor=request.user,
                study=study,
                kind="import",
                title=f"{'Import' if action == 'commit' else 'Dry run'} of measurements {upload.original_name}",
                handler="capture.imports.jobs.run_import",
                params={"upload": str(upload.pk), "spec": spec, "commit": action == "commit"},
            )
            return redirect("imports:job", slug=study.slug, job_id=job.pk)
        except ValidationError as exc:
            errors = exc.messages
    return render(request, "imports/measurements.html", _page(study, upload, path, errors))


def _posted_spec(post, previous: dict) -> dict:
    spec = {key: post.get(key, "") for key in TARGETS}
    for key in READER_KEYS:
        spec[key] = post.get(key, previous.get(key, ""))
    spec["date_format"] = post.get("date_format") or "auto"
    try:
        spec["header_row"] = max(1, int(spec["header_row"] or 1))
        spec["header_rows"] = max(1, int(spec["header_rows"] or 1))
        spec["two_digit_year_pivot"] = int(post.get("two_digit_year_pivot") or -1)
    except ValueError:
        raise ValidationError("Header rows and the two-digit year must be whole numbers.") from None
    return SheetMapping.from_spec(spec).to_spec()


def _page(study, upload: ImportUpload, path, errors: list[str]) -> dict:
    spec = dict(upload.spec)
    table, read_error = None, ""
    try:
        mapping = SheetMapping.from_spec(spec)
        table = measurement_sheet.read(path, mapping, upload.original_name)
    except ValidationError as exc:
        read_error = " ".join(exc.messages)
    if table is not None and not any(spec.get(key) for key in TARGETS):
        spec = {**suggest(table.headers), **{k: spec[k] for k in READER_KEYS if k in spec}}
    preview = [[cell_text(c) for c in cells] for _, cells in table.rows[:PREVIEW_ROWS]] if table else []
    report = upload.report or {}
    return {
        "study": study,
        "upload": upload,
        "table": table,
        "read_error": read_error,
        "errors": errors,
        "spec": spec,
        "targets": [
            {"key": key, "label": label, "required": key in REQUIRED, "value": spec.get(key, "")}
            for key, (label, _) in TARGETS.items()
        ],
        "headers": table.headers if table else [],
        "preview": preview,
        "date_formats": DATE_FORMAT_CHOICES,
        "report": report,
        "problems": report.get("problems", [])[:1000],
        "may_commit": bool(report) and not report.get("committed") and report["counts"]["problems"] == 0,
    }
