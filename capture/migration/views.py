"""The staff page "New study from a REDCap project": the files of `import_redcap_project`, uploaded."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from capture.definitions import services as definitions
from capture.imports.mapping import parse_value_map

from .redcap import migrate

MAX_UPLOAD = 20 * 1024 * 1024  # all files together


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (Django's documented recipe): cleans each, returns the list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)]


class ProjectForm(forms.Form):
    slug = forms.SlugField(max_length=64, label="Short name", help_text="Part of the study's address.")
    name = forms.CharField(required=False, max_length=255, label="Study name")
    files = MultipleFileField(  # type: ignore[assignment]  # a form field named like BaseForm.files
        help_text="Data dictionary or project XML, and any of: arms, events, instrument-event mapping, DAGs, "
        "repeating instruments, records (flat CSV). Each is recognised by its header.",
    )
    value_map = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One field a line: 'sex: TRUE=1; FALSE=0' recodes sex before import.",
    )
    check = forms.BooleanField(required=False, initial=True, label="Check only (write nothing)")

    def value_maps(self) -> dict[str, dict[str, str]]:
        maps = {}
        for line in (self.cleaned_data.get("value_map") or "").splitlines():
            field, _, pairs = line.partition(":")
            if field.strip():
                maps[field.strip()] = parse_value_map(pairs)
        return maps


@login_required
@require_http_methods(["GET", "POST"])
def import_project(request):
    """Staff: check, then create a study from a REDCap project's exported files (capture/migration/redcap.py)."""
    if not definitions.may_create_studies(request.user):
        raise PermissionDenied("Only staff may create studies. Ask an administrator.")
    form = ProjectForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        uploads = form.cleaned_data["files"]
        try:
            value_map = form.value_maps()
        except ValidationError as exc:
            form.add_error("value_map", exc)
            value_map = None
        if sum(f.size for f in uploads) > MAX_UPLOAD:
            form.add_error("files", f"The files are larger than {MAX_UPLOAD // 1024 // 1024} MB together.")
        elif value_map is not None:
            report = migrate(
                user=request.user,
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                files=[(f.name, f.read()) for f in uploads],
                dry_run=form.cleaned_data["check"],
                value_map=value_map,
            )
            if report.ok and report.study is not None:
                messages.success(request, f"Created {report.study.name}: {report.lines()[-1]}.")
                return redirect("web:dashboard", slug=report.study.slug)
    return render(request, "definitions/redcap_project.html", {"form": form, "report": report})
