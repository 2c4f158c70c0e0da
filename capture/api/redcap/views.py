"""The REDCap-compatible endpoint: one POST URL, `content=` chooses what is asked.

Thin: resolve the token to a user × study, check the role, call the module that does the
work, answer in REDCap's format. Errors answer in the request's `returnFormat` (or
`format`), XML when neither is given — as REDCap does, and as PyCap expects.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    ValidationError,
)
from django.http import Http404, HttpResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from capture.files import redcap as files_api
from capture.reports.api import export_report
from capture.studies import access
from capture.studies import services as study_services
from capture.studies.disclosure import Disclosure
from capture.studies.models import Membership
from capture.studies.roles import ROLES

from ..tokens import resolve_redcap_token
from . import logs, metadata_import, multipart, record_import, records, render, rights
from . import project as meta
from .params import Params, RedcapError

# The REDCap API version whose behaviour this endpoint follows (PyCap reads it with semantic_version).
REDCAP_VERSION = "14.5.0"
# The largest body the endpoint reads (REDCAP_API_MAX_BODY_BYTES overrides it). A larger one is refused
# on its Content-Length alone, nothing read, as Django refuses a form over DATA_UPLOAD_MAX_MEMORY_SIZE:
# an import holds about 2.4 times its body in memory while it is parsed.
MAX_BODY_BYTES = 64 * 1024 * 1024
# A form-encoded body's first bytes, read before the rest: a missing or wrong token there is refused
# without reading (or parsing) more. PyCap and REDCapR send the token first.
HEAD_BYTES = 64 * 1024
EXPORT_ONLY = {
    "version",
    "project",
    "metadata",
    "exportFieldNames",
    "instrument",
    "event",
    "arm",
    "formEventMapping",
    "repeatingFormsEvents",
    "log",
    "user",
    "dag",
    "userDagMapping",
    "userRole",
    "userRoleMapping",
}


# REDCap's definition writes, refused in production as REDCap refuses them (studies.services.require_writable).
_WRITES = {
    "metadata": "import metadata",
    "arm": "import arms",
    "event": "import events",
    "formEventMapping": "import the instrument-event mappings",
}


def max_body_bytes() -> int:
    return int(getattr(settings, "REDCAP_API_MAX_BODY_BYTES", MAX_BODY_BYTES))


def _content_length(request) -> int:
    raw = str(request.META.get("CONTENT_LENGTH") or "0").strip()
    if not (raw.isascii() and raw.isdigit()):
        raise RedcapError(f"The Content-Length header {raw[:40]!r} is not a number of bytes.")
    length = int(raw)
    if length > max_body_bytes():
        raise RedcapError(
            f"The request is larger than {max_body_bytes() // 2**20} MB, the most this server reads; "
            "import in parts.",
            413,
        )
    return length


class _HeadError(RedcapError):
    """A RedcapError found in the head of the body: answered in the format the head asks for."""

    def __init__(self, head: QueryDict, error: RedcapError):
        super().__init__(error.message, error.status)
        self.head = head


def _params(request) -> QueryDict:
    """The POST parameters. Form-encoded and multipart bodies are parsed here, past Django's
    in-memory cap (DATA_UPLOAD_MAX_MEMORY_SIZE), which a record import easily exceeds: a
    form-encoded body's token is checked on its first HEAD_BYTES before the rest is read; a
    multipart body (redcapAPI sends every call so) is read whole and split by multipart.py, its files
    left in `request.FILES`. Any other body goes to Django, whose refusals answer as REDCap
    errors too."""
    length = _content_length(request)
    if request.content_type == "multipart/form-data" and not getattr(request, "_read_started", False):
        return _multipart(request, length)
    if request.content_type != "application/x-www-form-urlencoded" or getattr(
        request, "_read_started", False
    ):
        try:
            return request.POST
        except RequestDataTooBig:
            raise RedcapError(
                "The request's parameters are larger than this server reads in memory; import in parts.", 413
            ) from None
        except TooManyFieldsSent:
            raise RedcapError(
                f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters.", 400
            ) from None
        except (MultiPartParserError, UnreadablePostError) as exc:
            raise RedcapError(f"The request's body could not be read: {exc}") from None
    encoding = request.encoding or "utf-8"
    head = request.read(min(length, HEAD_BYTES)) if length else b""
    if len(head) == length:
        return form_fields(head, encoding)
    # Only the parameters that end inside the head; a cut one is read again with the rest.
    head_params = form_fields(head[: head.rfind(b"&") + 1], encoding)
    token = head_params.get("token", "").strip()
    if not token:
        raise _HeadError(
            head_params,
            RedcapError(
                f"The token is missing from the request's first {HEAD_BYTES // 1024} KB: send it before "
                "the data (PyCap and REDCapR do).",
                403,
            ),
        )
    if resolve_redcap_token(token) is None:
        raise _HeadError(head_params, RedcapError(NO_PERMISSION, 403))
    return form_fields(head + request.read(length - len(head)), encoding)


def _multipart(request, length: int) -> QueryDict:
    """A multipart body's fields (its files left in request.FILES). A wrong token among the parts
    that end in the body's first HEAD_BYTES is refused before the rest is read."""
    boundary = multipart.boundary_of(request.META.get("CONTENT_TYPE", ""))
    encoding = request.encoding or "utf-8"
    head = request.read(min(length, HEAD_BYTES))
    try:
        if len(head) < length:
            head_fields = multipart.head_fields(head, boundary, encoding)
            token = head_fields.get("token", "").strip()
            if token and resolve_redcap_token(token) is None:
                raise _HeadError(head_fields, RedcapError(NO_PERMISSION, 403))
        fields, files = multipart.parse_multipart(head + request.read(length - len(head)), boundary, encoding)
    except multipart.TooManyPartsError as exc:
        raise _HeadError(exc.fields, exc) from None
    # As Django's own parsing leaves them, so that request.POST and request.FILES read the same.
    request._post, request._files = fields, files
    return fields


def form_fields(body: bytes, encoding: str) -> QueryDict:
    """A form-encoded body as a QueryDict, as Django would parse it, in about three times the
    body's size: Django's parser (urllib's unquote) makes a few objects per %XX escape, and a JSON
    import is mostly escapes, so a 40 MB body took 2 GB."""
    data = QueryDict(mutable=True, encoding=encoding)
    count, start = 0, 0
    while start <= len(body):
        end = body.find(b"&", start)
        end = len(body) if end == -1 else end
        if end > start:
            count += 1
            if count > settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:
                data._mutable = False
                raise _HeadError(data, multipart.TooManyPartsError(data))
            equals = body.find(b"=", start, end)
            equals = end if equals == -1 else equals
            name = _unquote(body, start, equals)
            value = _unquote(body, equals + 1, end) if equals < end else bytearray()
            data.appendlist(_decode(name, encoding), _decode(value, encoding))
        start = end + 1
    data._mutable = False
    return data


_UNQUOTE_BLOCK = 1 << 20


def _unquote(body: bytes, start: int, end: int) -> bytearray:
    """body[start:end] with "+" and %XX decoded, a block at a time (never cutting an escape)."""
    out = bytearray()
    while start < end:
        stop = min(start + _UNQUOTE_BLOCK, end)
        if stop < end:
            escape = body.rfind(b"%", stop - 2, stop)
            stop = escape if escape > start else stop
        out += _unquote_block(body[start:stop].replace(b"+", b" "))
        start = stop
    return out


_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")


def _unquote_block(block: bytes) -> bytes:
    # urllib's unquote_to_bytes, about ten times faster on what PyCap sends (a few distinct escapes,
    # many times over): replace each distinct escape at once, "%25" (a literal "%") last so that it
    # makes no new escape. Only when every "%" starts an escape; anything else goes to urllib.
    escapes = set(_ESCAPE.findall(block))
    if block.count(b"%") != sum(block.count(e) for e in escapes):
        return unquote_to_bytes(block)
    for escape in sorted(escapes, key=lambda e: e.upper() == b"%25"):
        block = block.replace(escape, bytes.fromhex(escape[1:].decode()))
    return block


def _decode(raw: bytearray, encoding: str) -> str:
    return raw.decode(encoding, errors="replace")  # as urllib's unquote, under Django's QueryDict


def _error_format(data: QueryDict) -> str:
    fmt = (data.get("returnFormat") or data.get("format") or "xml").lower()
    return fmt if fmt in ("json", "csv", "xml") else "xml"


NO_PERMISSION = "You do not have permissions to use the API"


@csrf_exempt
@require_POST
def redcap_api(request):
    data = QueryDict()
    try:
        data = _params(request)
        resolved = resolve_redcap_token(data.get("token", "").strip())
        if resolved is None:
            raise RedcapError(NO_PERMISSION, status=403)
        user, study = resolved
        files = getattr(request, "_files", None) if request.content_type == "multipart/form-data" else None
        return _dispatch(user, study, Params(data, files))
    except _HeadError as exc:
        return render.error_response(_error_format(exc.head), exc.message, exc.status)
    except RedcapError as exc:
        return render.error_response(_error_format(data), exc.message, exc.status)
    except PermissionDenied as exc:
        return render.error_response(_error_format(data), str(exc) or "You do not have permission.", 403)
    except Http404 as exc:
        return render.error_response(_error_format(data), str(exc) or "Not found.", 404)
    except ValidationError as exc:  # a service's refusal, e.g. deleting a signed record
        return render.error_response(_error_format(data), " ".join(exc.messages), 400)


def _dispatch(user, study, p: Params) -> HttpResponseBase:
    content = p.get("content")
    # REDCap reads a request that carries `data` as an import even without action=import (PyCap relies on it).
    action = p.get("action").lower() or ("import" if "data" in p.data else "export")
    if action != "export":  # the study's status: closed refuses every write, production these
        study_services.require_writable(
            study, _WRITES.get(content, "change data"), definitions=content in _WRITES
        )
    if content in _WRITES and action == "import":  # development only: require_writable refused production
        access.require_api(user, study, write=True)
        return metadata_import.import_definitions(user, study, content, p)
    if content in EXPORT_ONLY and action != "export":
        raise RedcapError(
            f"Capture's REDCap API does not change {content} (definitions and sites are managed in Capture itself)."
        )
    access.require_api(user, study, write=action != "export")  # the member's API rights (administration)
    if content == "version":
        return HttpResponse(REDCAP_VERSION, content_type="text/plain; charset=utf-8")
    if content == "generateNextRecordName":
        # REDCap's answer: one more than the largest whole-number record id (text, no format).
        return HttpResponse(record_import.next_record_name(study), content_type="text/plain; charset=utf-8")
    if content == "record":
        project = meta.Project(study)
        if action == "import":
            return record_import.import_records(user, study, project, p)
        if action == "delete":
            return records.delete_records(user, study, project, p)
        if action == "export":
            return records.export_records(user, study, project, p)
        raise RedcapError(f'The value of the parameter "action" is not valid: {action!r}.')
    if content == "file":  # capture/files: export, import (multipart part "file") or delete
        return files_api.file_api(user, study, p, action, getattr(p, "files", None))
    if content == "pdf":
        return files_api.pdf_api(user, study, p)
    if content == "report":  # capture/reports: a saved report, as the flat record export
        return export_report(user, study, p)
    handler = _EXPORTS.get(content)
    if handler is None:
        raise RedcapError(
            'The value of the parameter "content" is not valid'
            + (f": {content!r}." if content else " (it is missing).")
        )
    fmt = p.choice("format", ("json", "csv", "xml"), "xml")
    return handler(user, study, p, fmt)


def _project_info(user, study, p, fmt):
    project = meta.Project(study)
    created = Disclosure.for_user(user, study).timestamp(None, study.created_at)
    info = {
        "project_id": study.pk,
        "project_title": study.name,
        # A timestamp of no subject: withheld from de-identified readers (disclosure policy).
        "creation_time": timezone.localtime(created).strftime("%Y-%m-%d %H:%M:%S") if created else "",
        "production_time": "",
        "in_production": int(study.status != study.DEVELOPMENT),  # studies.models.Study.status
        "project_language": "English",
        "purpose": 2,
        "purpose_other": "",
        "project_notes": study.description,
        "custom_record_label": "",
        "secondary_unique_field": "",
        "is_longitudinal": int(project.longitudinal),
        "has_repeating_instruments_or_events": int(project.has_repeating),
        "surveys_enabled": 0,
        "scheduling_enabled": 0,
        "record_autonumbering_enabled": 0,
        "randomization_enabled": 0,
        "ddp_enabled": 0,
        "project_irb_number": "",
        "project_grant_number": "",
        "project_pi_firstname": "",
        "project_pi_lastname": "",
        "display_today_now_button": 1,
        "missing_data_codes": " | ".join(f"{c['code']}, {c['meaning']}" for c in study.missing_codes),
        "external_modules": "",
        "bypass_branching_erase_field_prompt": 0,
    }
    return render.object_response(fmt, info)


def _metadata(user, study, p, fmt):
    project = meta.Project(study)
    rows = meta.metadata(project)
    fields, forms = p.items("fields"), p.items("forms")
    if fields or forms:
        rows = [
            r
            for r in rows
            if r["field_name"] in fields
            or r["form_name"] in forms
            or r["field_name"].rsplit("_", 1)[0] in fields
        ]
    return render.rows_response(fmt, rows, meta.METADATA_KEYS)


def _field_names(user, study, p, fmt):
    rows = meta.export_field_names(meta.Project(study))
    wanted = p.get("field")
    if wanted:
        rows = [r for r in rows if r["original_field_name"] == wanted]
        if not rows:
            raise RedcapError(f'The field "{wanted}" does not exist in this project.')
    return render.rows_response(fmt, rows, ["original_field_name", "choice_value", "export_field_name"])


def _instruments(user, study, p, fmt):
    project = meta.Project(study)
    rows = [{"instrument_name": i.name, "instrument_label": i.label} for i in project.instruments.values()]
    return render.rows_response(fmt, rows, ["instrument_name", "instrument_label"])


def _longitudinal(project: meta.Project, what: str) -> None:
    if not project.longitudinal:
        # PyCap's is_longitudinal relies on this error for classic projects.
        raise RedcapError(f"You cannot export {what} for classic projects")


def _arm_filter(p: Params) -> set[int]:
    # isascii: str.isdigit() is true for '²', which int() refuses.
    return {int(a) for a in p.items("arms") if a.isascii() and a.isdigit()}


def _events(user, study, p, fmt):
    project = meta.Project(study)
    _longitudinal(project, "events")
    arms = _arm_filter(p)
    rows = [
        {
            "event_name": e.label,
            "arm_num": e.arm_num,
            "unique_event_name": e.unique_name,
            "custom_event_label": "",
            "event_id": e.event.pk,
            "days_offset": e.event.day,
            "offset_min": e.event.window_before,
            "offset_max": e.event.window_after,
        }
        for e in project.events
        if not arms or e.arm_num in arms
    ]
    return render.rows_response(fmt, rows, list(rows[0]) if rows else None)


def _arms(user, study, p, fmt):
    project = meta.Project(study)
    _longitudinal(project, "arms")
    arms = _arm_filter(p)
    numbered = {e.event.arm_id: (e.arm_num, e.arm_name) for e in project.events}
    rows = [
        {"arm_num": n, "name": title}
        for n, title in (numbered.get(arm.pk, (i, arm.title)) for i, arm in enumerate(project.arms, start=1))
        if not arms or n in arms
    ]
    return render.rows_response(fmt, rows, ["arm_num", "name"])


def _form_event_mapping(user, study, p, fmt):
    project = meta.Project(study)
    _longitudinal(project, "instrument-event mappings")
    arms = _arm_filter(p)
    rows = [
        {"arm_num": e.arm_num, "unique_event_name": e.unique_name, "form": form}
        for e in project.events
        if not arms or e.arm_num in arms
        for form in e.form_names
    ]
    return render.rows_response(fmt, rows, ["arm_num", "unique_event_name", "form"])


def _repeating(user, study, p, fmt):
    project = meta.Project(study)
    rows = []
    for e in project.events:
        if e.repeats:  # a repeating event: REDCap lists it with a blank form_name
            rows.append({"event_name": e.unique_name, "form_name": "", "custom_form_label": ""})
            continue
        for form in e.form_names:
            if form in e.repeating:
                row = {"event_name": e.unique_name} if project.longitudinal else {}
                rows.append({**row, "form_name": form, "custom_form_label": ""})
    columns = (["event_name"] if project.longitudinal else []) + ["form_name", "custom_form_label"]
    return render.rows_response(fmt, rows, columns)


def _dags(user, study, p, fmt):
    rows = [
        {
            "data_access_group_name": site.name,
            "unique_group_name": meta.dag_name(site),
            "data_access_group_id": site.pk,
        }
        for site in access.sites_visible_to(user, study).order_by("code")
    ]
    return render.rows_response(
        fmt, rows, ["data_access_group_name", "unique_group_name", "data_access_group_id"]
    )


def _members_visible(user, study):
    memberships = (
        Membership.objects.filter(study=study).select_related("user", "study").prefetch_related("sites")
    )
    if not access.can(user, "manage_study", study):
        memberships = memberships.filter(user=user)  # others' accounts are the administrators' business
    return memberships.order_by("user__username")


def _users(user, study, p, fmt):
    """The members (yourself, or everyone for a study administrator) with their rights as the
    endpoint enforces them (rights.py)."""
    instruments = list(meta.Project(study).instruments)
    rows = [rights.user_row(m, instruments) for m in _members_visible(user, study)]
    return _rights_response(fmt, rows)


def _user_roles(user, study, p, fmt):
    """The roles (REDCap's user roles): every role for a study administrator, else your own."""
    instruments = list(meta.Project(study).instruments)
    keys = {m.role for m in _members_visible(user, study)}
    if access.can(user, "manage_study", study):
        keys = set(ROLES)
    rows = [rights.role_row(key, instruments) for key in ROLES if key in keys]
    return _rights_response(fmt, rows)


def _user_role_mapping(user, study, p, fmt):
    rows = [
        {"username": m.user.get_username(), "unique_role_name": m.role} for m in _members_visible(user, study)
    ]
    return render.rows_response(fmt, rows, ["username", "unique_role_name"])


def _rights_response(fmt, rows):
    if fmt != "json":  # REDCap's CSV and XML spell a form's right as "form:right,form:right"
        for row in rows:
            for key in ("forms", "forms_export"):
                row[key] = ",".join(f"{k}:{v}" for k, v in row[key].items())
    return render.rows_response(fmt, rows, list(rows[0]) if rows else None)


def _user_dag_mapping(user, study, p, fmt):
    rows = []
    for m in _members_visible(user, study):
        sites = rights.member_sites(m)
        rows.append(
            {
                "username": m.user.get_username(),
                "redcap_data_access_group": sites[0] if len(sites) == 1 else "",
            }
        )
    return render.rows_response(fmt, rows, ["username", "redcap_data_access_group"])


_EXPORTS = {
    "project": _project_info,
    "metadata": _metadata,
    "exportFieldNames": _field_names,
    "instrument": _instruments,
    "event": _events,
    "arm": _arms,
    "formEventMapping": _form_event_mapping,
    "repeatingFormsEvents": _repeating,
    "dag": _dags,
    "user": _users,
    "userDagMapping": _user_dag_mapping,
    "userRole": _user_roles,
    "userRoleMapping": _user_role_mapping,
    "log": logs.export_log,
}
