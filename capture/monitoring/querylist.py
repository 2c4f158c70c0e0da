"""The study's query list: filters (site, status, form, age), its columns and its CSV.

Site-limited users see only their sites' queries (access.subjects_visible_to). Times are shown
as the user's disclosure policy allows (shifted with the subject's dates when de-identified);
the age in days is a difference, the same shifted or not.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from capture.cells import neutralise_row
from capture.records.compiled import compiled
from capture.records.models import Query, QueryMessage
from capture.studies import access
from capture.studies.disclosure import Disclosure

STATES = {
    "open": (Query.OPEN, Query.ANSWERED),
    "answered": (Query.ANSWERED,),
    "closed": (Query.CLOSED,),
    "all": (Query.OPEN, Query.ANSWERED, Query.CLOSED),
}
AGES = {"": 0, "7": 7, "14": 14, "30": 30}  # older than N days
LIMIT = 500


@dataclass
class Filters:
    site: str = ""
    status: str = "open"
    form: str = ""
    age: str = ""

    @classmethod
    def of(cls, params) -> Filters:
        status = params.get("status", "open")
        age = params.get("age", "")
        return cls(
            params.get("site", ""),
            status if status in STATES else "open",
            params.get("form", ""),
            age if age in AGES else "",
        )


def queries(user, study, filters: Filters):
    """The visible queries that pass the filters, newest change first, with their question."""
    first = QueryMessage.objects.filter(query=OuterRef("pk")).order_by("at", "pk").values("text")[:1]
    found = Query.objects.filter(
        record__subject__in=access.subjects_visible_to(user, study), status__in=STATES[filters.status]
    ).select_related("record__subject__site", "record__event", "record__form", "opened_by")
    if filters.site:
        found = found.filter(record__subject__site__code=filters.site)
    if filters.form:
        found = found.filter(record__form_name=filters.form)
    if AGES[filters.age]:
        found = found.filter(opened_at__lte=timezone.now() - dt.timedelta(days=AGES[filters.age]))
    return found.annotate(question=Subquery(first)).order_by("-updated_at")


def rows(user, study, found) -> list[dict]:
    """One dict per query: what the list and the CSV show."""
    disclosure = Disclosure.for_user(user, study)
    now = timezone.now()
    out = []
    for q in found[:LIMIT]:
        record = q.record
        name = q.field.split(".")[-1]
        rules = compiled(record.form).rules
        out.append(
            {
                "query": q,
                "subject": record.subject.subject_id,
                "site": record.subject.site.code,
                "event": record.event.title,
                "form": record.form.title + (f" #{record.instance}" if record.instance > 1 else ""),
                "field": q.field,
                "label": rules[name].label if name in rules else q.field,
                "question": q.question or "",
                "status": q.get_status_display(),
                "who": q.who_must_act,
                "age": (now - q.opened_at).days,
                "changed": disclosure.timestamp(record.subject, q.updated_at),
            }
        )
    if not disclosure.identified:
        # In the order of the times shown: the real order would tell how subjects' shifts differ.
        out.sort(key=lambda r: (r["changed"] is not None, r["changed"]), reverse=True)
    return out


COLUMNS = [
    "query",
    "subject",
    "site",
    "event",
    "form",
    "field",
    "label",
    "question",
    "status",
    "who_must_act",
    "age_days",
    "last_change",
]


def as_csv(found_rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in found_rows:
        changed = r["changed"].strftime("%Y-%m-%d %H:%M") if r["changed"] else ""
        writer.writerow(
            neutralise_row(
                [
                    r["query"].pk,
                    r["subject"],
                    r["site"],
                    r["event"],
                    r["form"],
                    r["field"],
                    r["label"],
                    r["question"],
                    r["status"],
                    r["who"],
                    r["age"],
                    changed,
                ]
            )
        )
    return out.getvalue()
