"""Import pages: upload a file, map its columns, dry run, read the report, commit.

Each view first asks capture.studies.access for the study with the `import_data` permission (404
without access to the study, 403 without the permission), then calls capture.imports.services.
Dry runs and commits run as background jobs (capture.jobs); their page shows the progress bar.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from capture.imaging.models import SourceIdentifier
from capture.jobs import services as jobs
from capture.studies import access

from . import measurement_views, readers, services
from .facts import file_facts
from .forms import DATE_FORMAT_CHOICES, UploadForm, page_columns, spec_from_post
from .mapping import format_value_map
from .models import ImportMapping, ImportUpload
from .structure import suggest_for_headers


@login_required
@require_http_methods(["GET", "POST"])
def index(request, slug):
    study = access.get_study(request.user, slug, services.PERMISSION)
    sites = access.sites_visible_to(request.user, study)
    form = UploadForm(request.POST or None, request.FILES or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        upload_file = form.cleaned_data["file"]
        try:
            upload = services.store_upload(
                actor=request.user,
                study=study,
                site=form.cleaned_data["site"],
                name=upload_file.name,
                chunks=upload_file.chunks(),
                kind=form.cleaned_data["kind"] or ImportUpload.RECORDS,
            )
        except ValidationError as exc:
            form.add_error("file", exc.messages[0])
        else:
            if upload.kind == ImportUpload.RECORDS:
                file_facts(upload, upload.spec)  # read the file once, now: its mapping page shows these facts
            return redirect("imports:upload", slug=study.slug, upload_id=upload.pk)
    uploads = ImportUpload.objects.filter(study=study).select_related("site", "created_by")
    if not access.can(request.user, "manage_study", study):
        uploads = uploads.filter(created_by=request.user)
    return render(
        request,
        "imports/index.html",
        {
            "study": study,
            "form": form,
            "uploads": uploads[:50],
            "mappings": ImportMapping.objects.filter(study=study).select_related("site"),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload_detail(request, slug, upload_id):
    """The mapping page of one upload: its columns, the mapping, the last dry run's report. A POST
    loads a saved mapping, maps the file as a REDCap export, re-reads it with other reader options,
    or starts a dry run or an import (a background job). The page shows the file's facts read at
    upload (capture.imports.facts), not the file: only other reader options read it again."""
    study = access.get_study(request.user, slug, services.PERMISSION)
    upload = services.get_upload(request.user, study, upload_id)
    if upload.kind == ImportUpload.MEASUREMENTS:  # a measurement sheet has its own mapping page
        with services.upload_path(upload) as path:  # a local copy when the upload is on object storage
            return measurement_views.upload_detail(request, study, upload, path)
    structure = services.StudyForms.of(study)
    spec = dict(upload.spec)
    errors: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action", "dry_run")
        if action in _PAGE_ACTIONS:
            _PAGE_ACTIONS[action](request, study, upload, structure)
            return redirect("imports:upload", slug=slug, upload_id=upload.pk)
        try:
            spec = _posted_spec(request, upload, spec, structure)
            job = _start_run(request, study, upload, spec, commit=action == "commit")
            return redirect("imports:job", slug=slug, job_id=job.pk)
        except ValidationError as exc:
            errors = exc.messages
    return render(
        request,
        "imports/upload.html",
        _upload_page(study, upload, structure, spec, errors, request.user),
    )


def _load_mapping(request, study, upload, structure) -> None:
    saved = ImportMapping.objects.filter(study=study, pk=request.POST.get("mapping") or 0).first()
    if saved is not None:
        ImportUpload.objects.filter(pk=upload.pk).update(mapping=saved, spec=saved.spec)
        messages.success(request, f"Mapping {saved.name!r} loaded.")


def _map_as_redcap(request, study, upload, structure) -> None:
    facts = file_facts(upload, dict(upload.spec))
    if not facts.error:
        ImportUpload.objects.filter(pk=upload.pk).update(spec=services.redcap_spec(structure, facts.headers))
        messages.success(request, "Mapped as a REDCap records export: check the columns below.")


def _preview(request, study, upload, structure) -> None:
    # New sheet or header rows mean new headers: start the column mapping afresh.
    ImportUpload.objects.filter(pk=upload.pk).update(spec=_reader_spec(request.POST, {}))


_PAGE_ACTIONS = {"load_mapping": _load_mapping, "redcap": _map_as_redcap, "preview": _preview}


def _posted_spec(request, upload, spec: dict, structure) -> dict:
    """The mapping the page's fields say, read against the file's headers."""
    facts = file_facts(upload, _reader_spec(request.POST, spec))
    if facts.error:
        raise ValidationError("The file cannot be read with these options.")
    targets = {value for value, _ in structure.choices()}
    return spec_from_post(request.POST, facts.headers, spec, targets)


def _start_run(request, study, upload, spec: dict, *, commit: bool):
    """Keep the mapping with the upload (and under a name, if asked) and start the dry run or import."""
    if request.POST.get("save_as", "").strip():
        saved = services.save_mapping(
            actor=request.user, study=study, name=request.POST["save_as"], spec=spec, site=upload.site
        )
        ImportUpload.objects.filter(pk=upload.pk).update(mapping=saved)
    ImportUpload.objects.filter(pk=upload.pk).update(spec=spec)
    return jobs.start_job(
        actor=request.user,
        study=study,
        kind="import",
        title=f"{'Import' if commit else 'Dry run'} of {upload.original_name}",
        handler="capture.imports.jobs.run_import",
        params={"upload": str(upload.pk), "spec": spec, "commit": commit},
    )


def _upload_page(study, upload, structure, spec: dict, errors: list[str], user) -> dict:
    """The mapping page's context: the file as the mapping reads it (or a suggested mapping for a
    file not mapped yet), a preview of its first rows, and the last report."""
    facts = file_facts(upload, spec)
    table = None if facts.error else facts  # headers, sheets, warnings, rows: as a table read
    if table is not None and not spec.get("columns") and not spec.get("subject_column"):
        suggested = suggest_for_headers(study, table.headers, set(table.numeric), site=upload.site)
        spec = {**suggested, **_reader_spec(spec, {})}
    report = upload.report or {}
    # Only the sites where the user may enrol are offered for new subjects.
    enrol_sites = [
        site
        for site in access.sites_visible_to(user, study)
        if access.may_act_at_site(user, "enroll_subject", study, site)
    ]
    extra = {key: spec.get(key, {}) for key in ("event_values", "status_columns")}
    extra["repeat_form_column"] = spec.get("repeat_form_column", "")
    return {
        "study": study,
        "upload": upload,
        "table": table,
        "read_error": facts.error,
        "row_count": f"{facts.rows:,} data row{'' if facts.rows == 1 else 's'}",
        "errors": errors,
        "spec": spec,
        "columns": page_columns(table.headers, spec, table.preview) if table else [],
        "choices": structure.choices(),
        "events": structure.event_names(),
        "date_formats": DATE_FORMAT_CHOICES,
        "missing_text": format_value_map(spec.get("missing_values", {})),
        "extra": json.dumps(extra),
        "report": report,
        "problems": report.get("problems", [])[:1000],
        "mappings": ImportMapping.objects.filter(study=study),
        "may_commit": report and not report.get("committed") and report["counts"]["problems"] == 0,
        "enrol_sites": enrol_sites,
        "key_kinds": SourceIdentifier.KINDS,
    }


def _reader_spec(source, spec: dict) -> dict:
    """`spec` with the file-reading options found in `source` (a POST or another spec)."""
    merged = dict(spec)
    for key in ("sheet", "header_row", "header_rows", "delimiter", "encoding"):
        if key in source:
            value = source[key]
            if key.startswith("header"):
                value = int(value) if str(value).isdigit() and int(value) >= 1 else 1
            merged[key] = value
    return merged


@login_required
def report_download(request, slug, upload_id):
    study = access.get_study(request.user, slug, services.PERMISSION)
    upload = services.get_upload(request.user, study, upload_id)
    if not upload.report:
        raise Http404("Run a dry run first; the annotated workbook shows its problems.")
    spec = upload.spec or {}
    try:
        with services.upload_path(upload) as path:
            data = services.annotated_workbook(
                path, upload.report, sheet=upload.report.get("sheet") or spec.get("sheet", "")
            )
    except readers.ReadError as exc:
        raise Http404(str(exc)) from None
    stem = upload.original_name.rsplit(".", 1)[0]
    response = HttpResponse(
        data, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{stem}-report.xlsx"'
    return response


@login_required
def job_detail(request, slug, job_id):
    study = access.get_study(request.user, slug, services.PERMISSION)
    jobs.recover_stale_jobs()
    job = jobs.get_job(request.user, job_id)
    if job.study_id != study.pk or job.kind != "import":
        raise Http404("No such import.")
    upload = ImportUpload.objects.filter(pk=job.params.get("upload"), study=study).first()
    return render(request, "imports/job.html", {"job": job, "study": study, "upload": upload})
