"""What the entry page's monitoring panel shows for one record and one user.

The panel (templates/monitoring/panel.html, included by records/entry.html) lists the form's
verification marks, the one cleared last and why, and the record's queries with their thread
and the buttons Query.TRANSITIONS allows this user. Its forms post to this app's views and come
back to the entry page, so it works without JavaScript; panel.js only saves a scroll.
"""

from __future__ import annotations

from capture.records import verification
from capture.records.compiled import compiled
from capture.records.models import Query, Verification
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

    marks = [
        (m, label(m.field) if m.field else "", disclosure.timestamp(subject, m.verified_at))
        for m in verification.active(record)
    ]
    cleared = (
        Verification.objects.filter(record=record, cleared_at__isnull=False)
        .select_related("cleared_by")
        .first()
        if not any(m.field == verification.FORM for m, _, _ in marks)
        else None
    )
    queries = []
    for query in record.queries.prefetch_related("messages__author").order_by("status", "-updated_at"):
        thread = [(m, disclosure.timestamp(subject, m.at)) for m in query.messages.all()]
        queries.append(
            {
                "query": query,
                "label": label(query.field),
                "thread": thread,
                "actions": [(a, ACTION_LABELS[a]) for a in query.actions_for(can)],
            }
        )
    may_verify = can("verify_data")
    return {
        "mon_record": record,
        "marks": marks,
        "form_verified": any(m.field == verification.FORM for m, _, _ in marks),
        "cleared": cleared,
        "cleared_at": disclosure.timestamp(subject, cleared.cleared_at) if cleared else None,
        "mon_queries": queries,
        "may_verify": may_verify,
        "fields": [(name, rule.label) for name, rule in c.rules.items() if name not in c.grouped],
    }
