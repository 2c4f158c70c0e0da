"""The audit table's indexes: every index is paid for on each insert (an import writes an event per
record, a 10,000-record REDCap migration 68,000), so each one answers a query no other index answers
(audit/migrations/0003), and the queries ask within the study's chain, where the indexes are."""

import pytest
from django.db import connection

from capture.api.views import audit_visible_to
from capture.audit.models import AuditEvent

# By hand, with the query each one answers.
EXPECTED = {
    ("chain", "seq"),  # unique; verify_chain, the REST list's order, the audit page's cursor
    ("chain", "timestamp", "seq"),  # the audit page, newest first
    ("chain", "actor_label", "timestamp", "seq"),  # ... by user
    ("chain", "action", "timestamp", "seq"),  # ... by action (also the REDCap log and REST list)
    ("chain", "object_label"),  # ... by subject (label prefix)
    ("object_id",),  # an object's events (a record's history; the site filter; ?object_id=)
    # Not the foreign keys actor_id and study_id (audit/migrations/0004): no query asks by them; only
    # deleting a user or a study would, which no page offers and PROTECT refuses once there are events.
}


def _indexes() -> set[tuple[str, ...]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)
    return {
        tuple(c["columns"])
        for c in constraints.values()
        if (c["index"] or c["unique"]) and not c["primary_key"]
    }


@pytest.mark.django_db
def test_the_audit_table_has_only_the_indexes_its_queries_use():
    assert _indexes() == EXPECTED


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan")
def test_the_rest_audit_list_filtered_by_action_reads_an_index_of_the_chain(subjects, study, personas):
    events = audit_visible_to(personas["admin"], study).filter(action="subject.enroll").order_by("seq")
    plan = events.explain()
    assert "audit_chain_action_time" in plan or "sqlite_autoindex_audit_auditevent_1" in plan, plan
    assert [e.action for e in events] == ["subject.enroll"] * 3
