"""Pages for definition interop: upload a REDCap dictionary, project XML, ODM or caDSR file, see its
forms and every problem, then create a study (staff), update a study's definitions (study
administrators) or load elements into the registry (staff); download a study's definitions.

The upload waits in the session between preview and confirmation, so what is written is exactly what
was previewed. Access is decided by capture.studies.access; the writing is done by services.
"""

from __future__ import annotations

import base64
import secrets

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from capture.studies import access

from . import models as m
from . import services
from .converters import Conversion
from .converters.redcap import project_key
from .loader import DefinitionError
from .schema import DataElement as DataElementSpec
from .schema import ItemGroup

MAX_UPLOAD = 5 * 1024 * 1024
SESSION_KEY = "definitions_upload"


class UploadForm(forms.Form):
    format = forms.ChoiceField(choices=list(services.FORMATS.items()), initial="redcap")
    file = forms.FileField(help_text="The dictionary (CSV) or XML file.")
    arms = forms.FileField(required=False, help_text="REDCap longitudinal projects: the arms CSV.")
    events = forms.FileField(required=False, help_text="REDCap longitudinal projects: the events CSV.")
    mapping = forms.FileField(
        required=False, help_text="REDCap longitudinal projects: the instrument-event mapping CSV."
    )
    repeating = forms.CharField(
        required=False, help_text="REDCap instruments that repeat, separated by commas (e.g. adverse_events)."
    )

    def clean(self):
        data = super().clean()
        for key in ("file", "arms", "events", "mapping"):
            upload = data.get(key)
            if upload is not None and upload.size > MAX_UPLOAD:
                self.add_error(key, f"The file is larger than {MAX_UPLOAD // 1024 // 1024} MB.")
        return data


class NewStudyForm(UploadForm):
    target = forms.ChoiceField(
        choices=[("study", "Create a new study"), ("registry", "Load the definitions only (no study)")],
        initial="study",
    )
    slug = forms.SlugField(
        required=False, max_length=64, label="Short name", help_text="Part of the study's address."
    )
    name = forms.CharField(required=False, max_length=255, label="Study name")

    def clean(self):
        data = super().clean()
        if data.get("target") == "study":
            if not data.get("slug"):
                self.add_error("slug", "A new study needs a short name.")
            if data.get("format") == "cadsr":
                self.add_error(
                    "target", "caDSR files define elements and forms, not a schedule: load them only."
                )
        return data


def _read(upload) -> bytes | None:
    return upload.read() if upload is not None else None


def _stash(request, payload: dict) -> str:
    token = secrets.token_urlsafe(12)
    request.session[SESSION_KEY] = {
        "token": token,
        **{k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in payload.items()},
    }
    return token


def _unstash(request, token: str) -> dict:
    stored = request.session.get(SESSION_KEY)
    if not stored or stored.get("token") != token:
        raise Http404("This upload has expired. Upload the file again.")
    binary = ("file", "arms", "events", "mapping")
    return {k: base64.b64decode(v) if k in binary and v else v for k, v in stored.items()}


def _convert(payload: dict, project: str) -> Conversion:
    return services.convert(
        payload["format"],
        payload["file"],
        source=payload["filename"],
        project=project,
        title=payload.get("name") or "",
        arms=payload.get("arms") or None,
        events=payload.get("events") or None,
        mapping=payload.get("mapping") or None,
        repeating=[r.strip() for r in (payload.get("repeating") or "").split(",") if r.strip()],
    )


def _payload(form) -> dict:
    data = form.cleaned_data
    return {
        "format": data["format"],
        "filename": data["file"].name,
        "file": _read(data["file"]),
        "arms": _read(data.get("arms")),
        "events": _read(data.get("events")),
        "mapping": _read(data.get("mapping")),
        "repeating": data.get("repeating", ""),
        "target": data.get("target", "update"),
        "slug": data.get("slug", ""),
        "name": data.get("name", ""),
    }


def _require_staff(user) -> None:
    if not services.may_create_studies(user):
        raise PermissionDenied("Only staff may create studies or load definitions. Ask an administrator.")


@login_required
@require_http_methods(["GET", "POST"])
def import_new(request):
    """Staff: upload a file, preview it, then create a study on it or load it into the registry."""
    _require_staff(request.user)
    form = NewStudyForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and "token" in request.POST:
        return _confirm_new(request, _unstash(request, request.POST["token"]))
    if request.method == "POST" and form.is_valid():
        payload = _payload(form)
        conversion = _convert(payload, project_key(payload["slug"] or payload["filename"].rsplit(".", 1)[0]))
        token = _stash(request, payload)
        return _preview(request, conversion, token=token, action=request.path, study=None, payload=payload)
    return render(request, "definitions/upload.html", {"form": form, "study": None})


def _confirm_new(request, payload: dict):
    conversion = _convert(payload, project_key(payload["slug"] or payload["filename"].rsplit(".", 1)[0]))
    try:
        if payload["target"] == "study":
            study, result = services.create_study_from_conversion(
                actor=request.user,
                conversion=conversion,
                slug=payload["slug"],
                name=payload["name"] or payload["slug"],
                administrator=request.user,  # its first administrator (studies.services.create_study)
            )
        else:
            result, _ = services.import_definitions(actor=request.user, conversion=conversion)
            study = None
    except (DefinitionError, ValidationError) as exc:
        problems = exc.problems if isinstance(exc, DefinitionError) else exc.messages
        return _preview(
            request,
            conversion,
            token=None,
            action=request.path,
            study=None,
            payload=payload,
            refused=problems,
        )
    request.session.pop(SESSION_KEY, None)
    if study is None:
        messages.success(request, f"Definitions loaded from {conversion.source}: {result.summary()}.")
        return redirect("definitions:import_new")
    messages.success(
        request,
        f"Created {study.name} on {study.schedule.ref} ({result.summary()}); you are its administrator. "
        "Add its sites next.",
    )
    return redirect("administration:sites", slug=study.slug)


@login_required
@require_http_methods(["GET", "POST"])
def import_for_study(request, slug):
    """Study administrators: upload new definitions for a study; changed ones load as new versions."""
    study = access.get_study(request.user, slug, "manage_study")
    form = UploadForm(request.POST or None, request.FILES or None)
    project = study.schedule.name
    if request.method == "POST" and "token" in request.POST:
        payload = _unstash(request, request.POST["token"])
        conversion = _convert(payload, project)
        try:
            result = services.update_study_definitions(actor=request.user, study=study, conversion=conversion)
        except (DefinitionError, ValidationError) as exc:
            problems = exc.problems if isinstance(exc, DefinitionError) else exc.messages
            return _preview(
                request,
                conversion,
                token=None,
                action=request.path,
                study=study,
                payload=payload,
                refused=problems,
            )
        request.session.pop(SESSION_KEY, None)
        study.refresh_from_db()
        messages.success(request, f"{study.name} runs on {study.schedule.ref} ({result.summary()}).")
        return redirect("web:dashboard", slug=study.slug)
    if request.method == "POST" and form.is_valid():
        payload = _payload(form)
        if payload["format"] == "cadsr":
            form.add_error(
                "format", "caDSR files have no schedule; a staff member loads them into the registry."
            )
        else:
            conversion = _convert(payload, project)
            token = _stash(request, payload)
            return _preview(
                request, conversion, token=token, action=request.path, study=study, payload=payload
            )
    return render(request, "definitions/upload.html", {"form": form, "study": study})


def _preview(request, conversion: Conversion, *, token, action, study, payload, refused=None):
    elements = conversion.elements_by_ref()
    forms = []
    for form in conversion.forms:
        sections = []
        for section in form.sections:
            entries = []
            for entry in section.items:
                if isinstance(entry, ItemGroup):
                    entries.append(
                        {
                            "group": entry,
                            "items": [_field(item, elements) for item in entry.items],
                        }
                    )
                else:
                    entries.append({"field": _field(entry, elements)})
            sections.append({"section": section, "entries": entries})
        forms.append({"form": form, "sections": sections})
    status = 200 if not conversion.errors and not refused else 422
    changes = services.plan(conversion) if not conversion.errors else None
    return render(
        request,
        "definitions/preview.html",
        {
            "conversion": conversion,
            "forms": forms,
            "token": None if conversion.errors else token,
            "action": action,
            "study": study,
            "payload": payload,
            "refused": refused or [],
            "changes": changes,
        },
        status=status,
    )


def _field(item, elements) -> dict:
    element = elements.get(item.element)
    if element is None:  # an element already in the registry, referenced by ref
        public_id, version = item.element.split("@")
        row = m.DataElement.objects.filter(public_id=public_id, version=version).first()
        element = DataElementSpec.model_validate(row.spec) if row else None
    widget = item.widget
    if element is not None and widget is None:
        if element.permissible_values:
            widget = "dropdown"
        elif element.datatype == "boolean":
            widget = "yesno"
        elif element.datatype == "file":
            widget = "file"
    input_type = {
        "date": "date",
        "datetime": "datetime-local",
        "time": "time",
        "integer": "number",
        "decimal": "number",
    }
    return {
        "item": item,
        "element": element,
        "name": item.name or (element.name if element else item.element),
        "label": item.label or (element.question if element else item.element),
        "widget": widget or "text",
        "input_type": input_type.get(element.datatype, "text") if element else "text",
    }


@login_required
@require_GET
def export(request, slug, fmt):
    """Download a study's definitions: a REDCap dictionary (and its schedule CSVs) or ODM 1.3.2."""
    study = access.get_study(request.user, slug)
    if fmt == "odm":
        data, problems = services.export_odm(actor=request.user, study=study)
        response = HttpResponse(data, content_type="application/xml")
        filename = f"{study.slug}_odm.xml"
    elif fmt in ("redcap", "arms", "events", "mapping"):
        text, schedule_files, problems = services.export_redcap_dictionary(actor=request.user, study=study)
        body = text if fmt == "redcap" else schedule_files[fmt]
        response = HttpResponse(body.encode("utf-8"), content_type="text/csv; charset=utf-8")
        filename = f"{study.slug}_{'dictionary' if fmt == 'redcap' else fmt}.csv"
    else:
        raise Http404("No such format.")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
