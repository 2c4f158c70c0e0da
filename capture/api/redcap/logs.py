"""`content=log`: the audit trail as REDCap's logging.

Seen through the user's disclosure policy: a de-identified reader gets shifted timestamps (none for
events about no subject), field names without values, and beginTime/endTime compared with the
timestamps they see. Filters as REDCap's: `logtype` (which kind of event), `user`, `record`, `dag`
(the events about the subjects of one data access group), `beginTime`/`endTime`.
"""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from capture.audit.models import AuditEvent
from capture.audit.shown import ShownEvent, shown_events, study_items
from capture.studies import access
from capture.studies.disclosure import Disclosure

from ..views import audit_visible_to
from . import records, render
from .params import Params, RedcapError

# The most log rows one request answers (newest first), as REDCap pages its logging.
LOG_ROWS = 10000
# REDCap's logtype values and the audit actions each covers (a prefix ends in "."). page_view:
# Capture does not log page views, so it answers no rows.
LOG_TYPES: dict[str, tuple[str, ...]] = {
    "export": ("export.",),
    "manage": ("definitions.", "study.", "site.", "import_mapping.", "import.", "imaging."),
    "user": ("membership.", "token."),
    "record": ("record.create", "record.update", "record.delete", "subject.enroll", "subject.move"),
    "record_add": ("record.create", "subject.enroll"),
    "record_edit": ("record.update", "subject.move"),
    "record_delete": ("record.delete",),
    "lock_record": ("record.lock", "record.unlock", "record.sign", "subject.lock", "subject.unlock"),
    "page_view": (),
}
COLUMNS = ["timestamp", "username", "action", "details", "record"]
_END_OF_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})\s+24:00(:00)?$")


def export_log(user, study, p: Params, fmt: str):
    if not access.can(user, "view_audit", study):
        raise RedcapError("You do not have Logging privileges", status=403)
    policy = Disclosure.for_user(user, study)
    events = audit_visible_to(user, study).order_by("-timestamp", "-seq")
    events = _by_type(events, p.get("logtype") or p.get("logType"))
    if p.get("user"):
        events = events.filter(actor_label=p.get("user"))
    if p.get("record"):
        rid = p.get("record")
        events = events.filter(object_label__in=[rid]) | events.filter(object_label__startswith=f"{rid} / ")
    in_dag = _dag_records(user, study, p.get("dag"))
    begin, end = moment(p.get("beginTime"), "beginTime"), moment(p.get("endTime"), "endTime", end=True)
    # In the database, the window widened by the study's shifts; exactly, on what the user sees.
    low, high = records.shift_range(study, policy)
    if begin:
        events = events.filter(timestamp__gte=begin - dt.timedelta(days=high))
    if end:
        events = events.filter(timestamp__lte=end - dt.timedelta(days=low))
    rows = []
    for shown in _shown(events, policy, study):
        when = shown.timestamp
        if (begin or end) and (when is None or (begin and when < begin) or (end and when > end)):
            continue
        row = _row(shown, when, hide_values=not policy.identified)
        if in_dag is not None and row["record"] not in in_dag:
            continue
        rows.append(row)
        if len(rows) == LOG_ROWS:
            break
    return render.rows_response(fmt, rows, COLUMNS)


def moment(text: str, name: str, *, end: bool = False) -> dt.datetime | None:
    """A beginTime/endTime as REDCap reads it: `YYYY-MM-DD HH:MM[:SS]`, a bare date, or blank; an
    end is the last moment of its minute, and `YYYY-MM-DD 24:00` (which REDCapR's redcap_log_read
    always sends) is the end of that day."""
    text = text.strip()
    whole_day = _END_OF_DAY.match(text)
    if whole_day:
        day = records._parse_moment(whole_day[1], name)
        assert day is not None
        return day + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    found = records._parse_moment(text, name)
    if found is not None and end:
        found += dt.timedelta(seconds=59) if found.second == 0 else dt.timedelta(0)
    return found


def _by_type(events, log_type: str):
    if not log_type:
        return events
    if log_type not in LOG_TYPES:
        raise RedcapError(
            f'The value of the parameter "logtype" is not valid: {log_type!r}. Use one of: {", ".join(LOG_TYPES)}.'
        )
    matching = events.none()
    for action in LOG_TYPES[log_type]:
        matching |= (
            events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
        )
    return matching


def _dag_records(user, study, dag: str) -> set[str] | None:
    """The record ids of the data access group `dag` (a site the user sees), or None for no filter."""
    if not dag:
        return None
    site = next((s for s in access.sites_visible_to(user, study) if s.code.lower() == dag.lower()), None)
    if site is None:
        raise RedcapError(f'The value of the parameter "dag" is not valid: {dag!r} is not a DAG you see.')
    return set(access.subjects_visible_to(user, study).filter(site=site).values_list("subject_id", flat=True))


def _row(shown: ShownEvent, when, *, hide_values: bool) -> dict:
    e = shown.event
    return {
        "timestamp": timezone.localtime(when).strftime("%Y-%m-%d %H:%M") if when else "",
        "username": e.actor_label,
        "action": _action(e),
        "details": _details(shown, hide_values),
        "record": e.object_label.split(" / ")[0] if e.object_type in ("record", "subject") else "",
    }


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


def _action(event: AuditEvent) -> str:
    verb = event.action.split(".")[-1]
    names = {"create": "Created", "update": "Updated", "delete": "Deleted", "enroll": "Created"}
    if event.object_type in ("record", "subject"):
        return f"{names.get(verb, verb.title())} Record {event.object_label.split(' / ')[0]}"
    return event.action


def _details(shown: ShownEvent, hide_values: bool) -> str:
    after = shown.after or {}
    values = after.get("data", after) if isinstance(after, dict) else {}
    if not isinstance(values, dict):
        return shown.object_label
    if hide_values:
        return ", ".join(sorted(k for k in values if not k.startswith("__")))
    return ", ".join(f"{k} = '{v}'" for k, v in values.items() if not k.startswith("__"))
