"""What the entry page's monitoring panel shows for one record and one user.

The panel (templates/monitoring/panel.html, included by records/entry.html) lists the form's
verification marks, the one cleared last and why, and the record's queries with their thread
and the buttons Query.TRANSITIONS allows this user. Its forms post to this app's views and come
back to the entry page, so it works without JavaScript; panel.js only saves a scroll.
"""

from __future__ import annotations

from capture.records import verification
from capture.records.compiled import compiled
from capture.records.models import Query, QueryMessage, Verification
from capture.studies import access
from capture.studies.disclosure import Disclosure

ACTION_LABELS = {Query.ANSWER: "Answer", Query.CLOSE: "Close", Query.REOPEN: "Reopen"}


def panel_context(user, record, subject) -> dict:
    """The panel's context; empty when the form has no record yet (nothing to verify or query)."""
    if record is None:
        return {}
    study = subject.study
    disclosure = Disclosure.for_user(user, study)
    c = compiled(record.form)

    def can(permission: str) -> bool:
        return access.may_act_at_site(user, permission, study, subject.site)

    def label(field: str) -> str:
        name = field.split(".")[-1]
        return c.rules[name].label if name in c.rules else field

    # Two queries: every mark of the record, and every message of its queries (a query has at
    # least its opening message), so the entry page pays a fixed price for the panel.
    every = list(Verification.objects.filter(record=record).select_related("verified_by", "cleared_by"))
    active = sorted((m for m in every if m.active), key=lambda m: (m.field != verification.FORM, m.field))
    marks = [
        (m, label(m.field) if m.field else "", disclosure.timestamp(subject, m.verified_at)) for m in active
    ]
    form_verified = any(m.field == verification.FORM for m in active)
    # Marks come newest first (Meta.ordering); the first cleared one is the latest verified.
    cleared = next((m for m in every if not m.active), None)
    threads: dict[int, tuple[Query, list]] = {}
    for message in QueryMessage.objects.filter(query__record=record).select_related("query", "author"):
        threads.setdefault(message.query_id, (message.query, []))[1].append(
            (message, disclosure.timestamp(subject, message.at))
        )
    order = {Query.OPEN: 0, Query.ANSWERED: 1, Query.CLOSED: 2}
    queries = [
        {
            "query": query,
            "label": label(query.field),
            "thread": thread,
            "actions": [(a, ACTION_LABELS[a]) for a in query.actions_for(can)],
        }
        for query, thread in sorted(threads.values(), key=lambda t: (order[t[0].status], -t[0].pk))
    ]
    may_verify = can("verify_data")
    return {
        "mon_record": record,
        "marks": marks,
        "form_verified": form_verified,
        "cleared": None if form_verified else cleared,
        "cleared_at": disclosure.timestamp(subject, cleared.cleared_at) if cleared else None,
        "mon_queries": queries,
        "may_verify": may_verify,
        "fields": [(name, rule.label) for name, rule in c.rules.items() if name not in c.grouped],
    }
