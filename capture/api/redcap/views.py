"""The REDCap-compatible endpoint: one POST URL, `content=` chooses what is asked.

Thin: resolve the token to a user × study, check the role, call the module that does the
work, answer in REDCap's format. Errors answer in the request's `returnFormat` (or
`format`), XML when neither is given — as REDCap does, and as PyCap expects.
"""

from __future__ import annotations

import datetime as dt
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

from capture.audit.models import AuditEvent
from capture.audit.shown import ShownEvent, shown_events, study_items
from capture.files import redcap as files_api
from capture.reports.api import export_report
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Membership

from ..tokens import resolve_redcap_token
from ..views import audit_visible_to
from . import project as meta
from . import record_import, records, render
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
    """The POST parameters. Form-encoded bodies are parsed here, past Django's in-memory cap
    (DATA_UPLOAD_MAX_MEMORY_SIZE), which a record import easily exceeds; their token is checked on
    the body's first HEAD_BYTES before the rest is read. Other bodies (multipart) go to Django's
    parser, whose refusals answer as REDCap errors too."""
    length = _content_length(request)
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
                raise RedcapError(
                    f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters.", 400
                )
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
        params = Params(data)
        if request.content_type == "multipart/form-data":
            params.files = request.FILES  # content=file's upload
        return _dispatch(user, study, params)
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
        "in_production": 1,
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
            "unique_group_name": site.code.lower(),
            "data_access_group_id": site.pk,
        }
        for site in access.sites_visible_to(user, study).order_by("code")
    ]
    return render.rows_response(
        fmt, rows, ["data_access_group_name", "unique_group_name", "data_access_group_id"]
    )


def _members_visible(user, study):
    memberships = Membership.objects.filter(study=study).select_related("user").prefetch_related("sites")
    if not access.can(user, "manage_study", study):
        memberships = memberships.filter(user=user)  # others' accounts are the administrators' business
    return memberships.order_by("user__username")


def _users(user, study, p, fmt):
    project = meta.Project(study)
    rows = []
    for m in _members_visible(user, study):
        u = m.user

        def has(code, u=u):
            return int(access.can(u, code, study))

        sites = [] if m.all_sites else sorted(s.code.lower() for s in m.sites.all())
        export = 1 if has("export_identified") else 2 if has("export_deidentified") else 0
        rows.append(
            {
                "username": u.get_username(),
                "email": u.email,
                "firstname": u.first_name,
                "lastname": u.last_name,
                "expiration": m.api_expires.isoformat() if m.api_expires else "",
                "data_access_group": sites[0] if len(sites) == 1 else "",
                "design": 0,
                "user_rights": has("manage_study"),
                "data_access_groups": has("manage_study"),
                "data_export": export,
                "reports": 1,
                "stats_and_charts": 1,
                "manage_survey_participants": 0,
                "calendar": 0,
                "data_import_tool": has("import_data"),
                "data_comparison_tool": 0,
                "logging": has("view_audit"),
                "file_repository": 0,
                "data_quality_create": 0,
                "data_quality_execute": has("verify_data"),
                "api_export": int(m.api_export),
                "api_import": int(bool(has("enter_data")) and m.api_import),
                "mobile_app": 0,
                "mobile_app_download_data": 0,
                "record_create": has("enroll_subject"),
                "record_rename": 0,
                "record_delete": has("manage_study"),
                "lock_records_all_forms": has("lock_records"),
                "lock_records": has("lock_records"),
                "lock_records_customization": 0,
                "forms": {name: (1 if has("enter_data") else 2) for name in project.instruments},
            }
        )
    if fmt != "json":
        for row in rows:
            row["forms"] = ",".join(f"{k}:{v}" for k, v in row["forms"].items())
    return render.rows_response(fmt, rows, list(rows[0]) if rows else None)


def _user_dag_mapping(user, study, p, fmt):
    rows = []
    for m in _members_visible(user, study):
        sites = [] if m.all_sites else sorted(s.code.lower() for s in m.sites.all())
        rows.append(
            {
                "username": m.user.get_username(),
                "redcap_data_access_group": sites[0] if len(sites) == 1 else "",
            }
        )
    return render.rows_response(fmt, rows, ["username", "redcap_data_access_group"])


# The most log rows one request answers (newest first), as REDCap pages its logging.
LOG_ROWS = 10000


def _log(user, study, p, fmt):
    """The audit trail as REDCap's logging, seen through the user's disclosure policy: a
    de-identified reader gets shifted timestamps (none for events about no subject), values of
    no item, and beginTime/endTime compared with the timestamps they see."""
    if not access.can(user, "view_audit", study):
        raise RedcapError("You do not have Logging privileges", status=403)
    policy = Disclosure.for_user(user, study)
    events = audit_visible_to(user, study).order_by("-timestamp", "-seq")
    if p.get("user"):
        events = events.filter(actor_label=p.get("user"))
    if p.get("record"):
        rid = p.get("record")
        events = events.filter(object_label__in=[rid]) | events.filter(object_label__startswith=f"{rid} / ")
    begin = records._parse_moment(p.get("beginTime"), "beginTime")
    end = records._parse_moment(p.get("endTime"), "endTime")
    if end:
        end += dt.timedelta(seconds=59)
    # In the database, the window widened by the study's shifts; exactly, on what the user sees.
    low, high = records.shift_range(study, policy)
    if begin:
        events = events.filter(timestamp__gte=begin - dt.timedelta(days=high))
    if end:
        events = events.filter(timestamp__lte=end - dt.timedelta(days=low))
    rows = []
    for shown in _shown(events, policy, study):
        moment = shown.timestamp
        if (begin or end) and (moment is None or (begin and moment < begin) or (end and moment > end)):
            continue
        e = shown.event
        rows.append(
            {
                "timestamp": timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "",
                "username": e.actor_label,
                "action": _log_action(e),
                "details": _log_details(shown, not policy.identified),
                "record": e.object_label.split(" / ")[0] if e.object_type in ("record", "subject") else "",
            }
        )
        if len(rows) == LOG_ROWS:
            break
    return render.rows_response(fmt, rows, ["timestamp", "username", "action", "details", "record"])


def _shown(events, policy, study, chunk: int = 2000):
    """The events as `policy` shows them, read `chunk` at a time."""
    items = None if policy.identified else study_items(study)
    batch = []
    for event in events.iterator(chunk_size=chunk):
        batch.append(event)
        if len(batch) == chunk:
            yield from shown_events(batch, policy, study, items)
            batch = []
    yield from shown_events(batch, policy, study, items)


def _log_action(event: AuditEvent) -> str:
    verb = event.action.split(".")[-1]
    names = {"create": "Created", "update": "Updated", "delete": "Deleted", "enroll": "Created"}
    if event.object_type in ("record", "subject"):
        return f"{names.get(verb, verb.title())} Record {event.object_label.split(' / ')[0]}"
    return event.action


def _log_details(shown: ShownEvent, hide_values: bool) -> str:
    after = shown.after or {}
    values = after.get("data", after) if isinstance(after, dict) else {}
    if not isinstance(values, dict):
        return shown.object_label
    if hide_values:
        return ", ".join(sorted(k for k in values if not k.startswith("__")))
    return ", ".join(f"{k} = '{v}'" for k, v in values.items() if not k.startswith("__"))


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
    "log": _log,
}
