"""The audit log page's query: one study's events, newest first, filtered, paged by keyset.

Events of a study are one hash chain. "Newest first" is `ORDER BY timestamp DESC, seq DESC`, and
the next page starts below the last event shown (`?before=<its seq>`, whose timestamp is read back):
keyset paging, no OFFSET, so page 1,000 costs what page 1 costs. Each filter has an index that
ends in (timestamp, seq) (capture/audit/models.py), so a filtered page is one index range. Events are about a site's subjects when they name one of them
(subject events by id, record and query events by their record); a user limited to some sites
sees only those, and no study-wide event. Values are shown through capture/audit/shown.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from capture.audit.models import AuditEvent
from capture.audit.services import chain_key
from capture.audit.shown import SUBJECT_TYPES, ShownEvent, shown_events, study_items
from capture.cells import neutralise_row
from capture.records.models import FormRecord, Query
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Site, Study, Subject

PAGE_SIZE = 50
CSV_BATCH = 2000
FILTERS = ("user", "subject", "form", "field", "action", "date_from", "date_to", "site")


@dataclass
class AuditFilter:
    """The page's filters as typed (strings; empty means no filter) and the problems found."""

    values: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> str:
        return self.values.get(name, "")

    def query_string(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in self.values.items() if v})


def read_filter(params) -> AuditFilter:
    return AuditFilter({name: params.get(name, "").strip() for name in FILTERS})


def _day(text: str, name: str, errors: list[str]) -> dt.datetime | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        errors.append(f"{name}: write the date as YYYY-MM-DD (for example 2025-03-01).")
        return None
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _as_text(qs: QuerySet) -> QuerySet:
    # object_id is text: compare it with the primary keys as text, in the database.
    return qs.order_by().annotate(key=Cast("pk", CharField())).values("key")


def about_sites(study: Study, site_ids) -> Q:
    """Events about the subjects (and records, queries) of these sites, or about the sites."""
    subjects = Subject.objects.filter(study=study, site_id__in=site_ids)
    records = FormRecord.objects.filter(subject__in=subjects.values("pk"))
    queries = Query.objects.filter(record__in=records.values("pk"))
    return (
        Q(object_type="subject", object_id__in=_as_text(subjects))
        | Q(object_type="record", object_id__in=_as_text(records))
        | Q(object_type="query", object_id__in=_as_text(queries))
        | Q(object_type="site", object_id__in=_as_text(Site.objects.filter(study=study, pk__in=site_ids)))
    )


def events_for(user, study: Study, audit_filter: AuditFilter, policy: Disclosure) -> QuerySet:
    """The events of `study` the user may read that match the filter (newest first).
    Fills `audit_filter.errors` for filters it could not apply."""
    f, errors = audit_filter, audit_filter.errors
    events = AuditEvent.objects.filter(chain=chain_key(study))
    visible = access.sites_visible_to(user, study)
    if visible.count() != study.sites.count():  # a site-limited reader
        events = events.filter(about_sites(study, list(visible.values_list("pk", flat=True))))
    if f["user"]:
        events = events.filter(actor_label=f["user"])
    if f["action"]:
        action = f["action"]
        events = (
            events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
        )
    if f["subject"]:
        sid = f["subject"]
        events = events.filter(
            Q(object_type__in=SUBJECT_TYPES) & (Q(object_label=sid) | Q(object_label__startswith=f"{sid} / "))
        )
    if f["form"]:
        events = events.filter(
            object_type__in=("record", "query"), object_label__contains=f" / {f['form']} #"
        )
    if f["field"]:
        name = f["field"]
        item = study_items(study).get(name) if not policy.identified else None
        if item is not None and item.identifier:
            errors.append(f"field: {name} identifies a person; your role sees the study de-identified.")
        else:
            events = events.filter(
                Q(object_type="record")
                & (Q(before__has_key=name) | Q(after__has_key=name) | Q(after__data__has_key=name))
                | Q(object_type="query", object_label__endswith=f" · {name}")
            )
    if f["site"]:
        site = visible.filter(code=f["site"]).first()
        if site is None:
            errors.append(f"site: you see no site {f['site']!r} in this study.")
            events = events.none()
        else:
            events = events.filter(about_sites(study, [site.pk]))
    start, end = _day(f["date_from"], "from", errors), _day(f["date_to"], "to", errors)
    if (start or end) and not policy.identified:
        # Real timestamps are not shown to a de-identified role: searching them would show them.
        errors.append("date range: your role sees the study de-identified, so dates cannot be searched.")
    else:
        if start:
            events = events.filter(timestamp__gte=start)
        if end:
            events = events.filter(timestamp__lt=end + dt.timedelta(days=1))
    return events.order_by("-timestamp", "-seq")


def below(events: QuerySet, timestamp, seq: int) -> QuerySet:
    """The events after (older than) the one at (timestamp, seq) in the page order. The plain
    `timestamp <=` bound lets the database start its index range there."""
    return events.filter(Q(timestamp__lte=timestamp) & (Q(timestamp__lt=timestamp) | Q(seq__lt=seq)))


def page_of(
    events: QuerySet, study: Study, before: str | None, size: int = PAGE_SIZE
) -> tuple[list[AuditEvent], int | None]:
    """One page below the seq `before` (the first page without it), and the next page's cursor."""
    if before:
        cursor = (
            list(
                AuditEvent.objects.filter(chain=chain_key(study), seq=int(before)).values_list(
                    "timestamp", flat=True
                )
            )
            if before.isdigit()
            else []
        )
        if not cursor:
            raise ValidationError("The page link is broken: 'before' names no event of this study.")
        events = below(events, cursor[0], int(before))
    rows = list(events[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].seq if more and rows else None)


@dataclass(frozen=True)
class Change:
    name: str
    before: str
    after: str


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def changes(shown: ShownEvent) -> list[Change]:
    """before → after, one line per key for dictionaries, one line otherwise."""
    before, after = shown.before, shown.after
    if isinstance(after, dict) and isinstance(after.get("data"), dict) and before is None:
        after = after["data"]
    if isinstance(before, dict) or isinstance(after, dict):
        b, a = before if isinstance(before, dict) else {}, after if isinstance(after, dict) else {}
        names = list(dict.fromkeys([*b, *a]))
        return [
            Change(n, _text(b.get(n)), _text(a.get(n))) for n in names if b.get(n) != a.get(n) or n not in b
        ]
    if before is None and after is None:
        return []
    return [Change("", _text(before), _text(after))]


CSV_HEADER = [
    "seq",
    "timestamp",
    "user",
    "action",
    "object_type",
    "object_id",
    "object",
    "before",
    "after",
    "reason",
]


class _Echo:
    def write(self, value):
        return value


def csv_rows(events: QuerySet, policy: Disclosure, study: Study) -> Iterator[str]:
    """The filtered events as CSV lines, read in keyset batches so memory stays flat."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    items = None if policy.identified else study_items(study)
    last = None
    while True:
        batch = below(events, last.timestamp, last.seq) if last is not None else events
        rows = list(batch[:CSV_BATCH])
        if not rows:
            return
        for s in shown_events(rows, policy, study, items):
            e = s.event
            yield writer.writerow(
                neutralise_row(
                    [
                        e.seq,
                        s.timestamp.isoformat() if s.timestamp else "",
                        e.actor_label,
                        e.action,
                        e.object_type,
                        e.object_id,
                        s.object_label,
                        _text(s.before),
                        _text(s.after),
                        e.reason,
                    ]
                )
            )
        if len(rows) < CSV_BATCH:
            return
        last = rows[-1]
