"""The REDCap API's `content=file` (export / import / delete) and `content=pdf`, as PyCap's
`export_file`, `import_file`, `delete_file` and `export_pdf` call them.

REDCap answers a file export with the bytes and `Content-Type: <type>; name="<file name>"` (PyCap
reads the name there), an import or delete with an empty body, and errors in its own format
(raised here as RedcapError; the endpoint renders them). The work is capture/files/services.py's
and capture/records/pdf.py's; this module only reads REDCap's parameters.
"""

from __future__ import annotations

from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase

from capture.api.redcap import project as meta
from capture.api.redcap.params import Params, RedcapError
from capture.records import pdf
from capture.studies import access
from capture.studies.models import Study

from . import services


def _subject(user, study: Study, rid: str):
    if not rid:
        raise RedcapError('The parameter "record" is missing.')
    subject = access.subjects_visible_to(user, study).filter(subject_id=rid).select_related("site").first()
    if subject is None:
        raise RedcapError(f"The record {rid!r} does not exist.")
    subject.study = study
    return subject


def _event(project: meta.Project, subject, p: Params) -> meta.RcEvent:
    name = p.get("event")
    if project.longitudinal and not name:
        raise RedcapError('The parameter "event" is missing: this project is longitudinal.')
    rc_event = project.event_for(subject.arm_id, name)
    if rc_event is None:
        raise RedcapError(f"The event {name!r} is not valid for record {subject.subject_id!r}.")
    return rc_event


def _instance(rc_event: meta.RcEvent, instrument: str, p: Params) -> int:
    raw = p.get("repeat_instance") or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise RedcapError(f'The value of the parameter "repeat_instance" is not valid: {raw!r}.')
    if int(raw) > 1 and instrument not in rc_event.repeating:
        raise RedcapError(f"The instrument {instrument!r} does not repeat at {rc_event.unique_name!r}.")
    return int(raw)


def place(user, study: Study, p: Params) -> services.Place:
    """The file field a `content=file` request names (record, field, event, repeat_instance)."""
    project = meta.Project(study)
    subject = _subject(user, study, p.get("record"))
    name = p.get("field")
    found = project.fields_by_name.get(name)
    if found is None:
        raise RedcapError(
            f"The field {name!r} does not exist." if name else 'The parameter "field" is missing.'
        )
    instrument, field = found
    if field.datatype != "file":
        raise RedcapError(f"The field {name!r} is not a file upload field.")
    rc_event = _event(project, subject, p)
    if instrument not in rc_event.form_names:
        raise RedcapError(f"The field {name!r} is not on a form of the event {rc_event.unique_name!r}.")
    return services.Place(
        subject=subject,
        event_name=rc_event.event.name,
        form_name=project.form_of[instrument],
        instance=_instance(rc_event, instrument, p),
        field=field.name,
    )


def file_api(user, study: Study, p: Params, action: str, files) -> HttpResponseBase:
    """`content=file`: action export, import (the upload in the part named `file`) or delete."""
    if action not in ("export", "import", "delete"):
        raise RedcapError(f'The value of the parameter "action" is not valid: {action!r}.')
    where = place(user, study, p)
    if action == "import":
        upload = files.get("file") if files is not None else None
        if upload is None:
            raise RedcapError('No file was uploaded: send it as the multipart part named "file".')
        services.attach(actor=user, place=where, upload=upload)
        return HttpResponse(b"", content_type="text/plain; charset=utf-8")
    if action == "delete":
        if services.on_record(services.record_at(where), where.field) is None:
            raise RedcapError("There is no file to delete for this record.")
        services.detach(actor=user, place=where)
        return HttpResponse(b"", content_type="text/plain; charset=utf-8")
    stored = services.on_record(services.record_at(where), where.field)
    if stored is None:
        raise RedcapError("There is no file to download for this record.")
    services.readable(user, stored)
    return download(stored)


def download(stored) -> FileResponse:
    """The content as REDCap sends it: its type with the file's name as a parameter."""
    response = FileResponse(
        services.open_content(stored),
        as_attachment=True,
        filename=stored.name,
        content_type=stored.content_type,
    )
    quoted = stored.name.replace("\\", "_").replace('"', "_")
    response["Content-Type"] = f'{stored.content_type}; name="{quoted}"'
    return response


def pdf_api(user, study: Study, p: Params) -> HttpResponseBase:
    """`content=pdf`: a blank form (no record), one record's forms, or every record (allRecords)."""
    project = meta.Project(study)
    instrument = p.get("instrument")
    if instrument and instrument not in project.instruments:
        raise RedcapError(f"The instrument {instrument!r} does not exist.")
    forms = (
        [project.form_of[instrument]] if instrument else [i.form_name for i in project.instruments.values()]
    )
    event_name = ""
    if p.get("event"):
        rc_event = project.events_by_name.get(p.get("event"))
        if rc_event is None:
            raise RedcapError(f"The event {p.get('event')!r} is not valid.")
        event_name = rc_event.event.name
    if p.flag("allRecords"):
        subjects = list(access.subjects_visible_to(user, study).order_by("subject_id"))
    elif p.get("record"):
        subjects = [_subject(user, study, p.get("record"))]
    else:
        subjects = []
    if subjects:
        content = pdf.records_pdf(user, study, subjects, forms=forms, event_name=event_name)
    else:
        content = pdf.blank_pdf(study, forms, event_name=event_name)
    name = f"{study.slug}.pdf"
    response = HttpResponse(content, content_type=f'application/pdf; name="{name}"')
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
