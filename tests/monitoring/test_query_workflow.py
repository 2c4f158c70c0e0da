"""Queries on the form (REDCap's Data Resolution Workflow): the buttons each role sees in each
state come from one transition table, checked here against a table written by hand; the panel on
the entry page opens, answers, closes and reopens without JavaScript."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.records.models import Query
from capture.records.services import move_query, open_query, save_record

# (state, persona) -> the buttons on the entry page's panel, in order. Written by hand.
BUTTONS = [
    ("open", "coordinator_a", ["answer"]),
    ("open", "monitor", ["close"]),
    ("open", "data_manager", ["answer", "close"]),
    ("open", "statistician", []),
    ("answered", "coordinator_a", []),
    ("answered", "monitor", ["close", "reopen"]),
    ("answered", "data_manager", ["close", "reopen"]),
    ("closed", "coordinator_a", []),
    ("closed", "monitor", ["reopen"]),
    ("closed", "data_manager", ["reopen"]),
]


def make_record(personas, subjects):
    return save_record(
        actor=personas["coordinator_a"],
        subject=subjects["a"],
        event_name="baseline",
        form_name="demographics",
        values={"sex": "1", "age": 54, "weight": 70},
    )


def query_in(state, personas, record) -> Query:
    query = open_query(actor=personas["monitor"], record=record, field="weight", text="Source says 72?")
    if state in ("answered", "closed"):
        move_query(actor=personas["coordinator_a"], query=query, action="answer", text="Checked: 70.")
    if state == "closed":
        move_query(actor=personas["monitor"], query=query, action="close")
    query.refresh_from_db()
    assert query.status == state
    return query


def entry_url(subject) -> str:
    return reverse("records:entry", args=["trial", subject.subject_id, "baseline", "demographics", 1])


@pytest.mark.parametrize(("state", "persona", "buttons"), BUTTONS)
def test_each_role_sees_only_the_actions_of_the_state(client, personas, subjects, state, persona, buttons):
    query = query_in(state, personas, make_record(personas, subjects))
    client.force_login(personas[persona])
    page = client.get(entry_url(subjects["a"])).content.decode()
    panel = page[page.index(f'id="query-{query.pk}"') :]
    panel = panel[: panel.index("</ul>")]  # the panel's query list ends there (threads are <ol>)
    shown = re.findall(r'<button type="submit" name="action" value="(\w+)"', panel)
    assert shown == buttons


def test_no_state_offers_answer_close_and_reopen_at_once():
    for state, _ in Query.STATUSES:
        actions = {a for (s, a) in Query.TRANSITIONS if s == state}
        assert actions != {"answer", "close", "reopen"}, state


def test_moves_outside_the_table_are_refused_with_what_is_possible(personas, subjects):
    record = make_record(personas, subjects)
    query = query_in("open", personas, record)
    with pytest.raises(ValidationError, match="cannot be reopened; it can be answered or closed"):
        move_query(actor=personas["monitor"], query=query, action="reopen", text="?")
    with pytest.raises(PermissionDenied):
        move_query(actor=personas["coordinator_a"], query=query, action="close")
    closed = query_in("closed", personas, record)
    with pytest.raises(ValidationError, match="cannot be answered"):
        move_query(actor=personas["coordinator_a"], query=closed, action="answer", text="late")


def test_a_coordinator_of_the_other_site_may_not_answer(personas, subjects):
    query = query_in("open", personas, make_record(personas, subjects))
    with pytest.raises(PermissionDenied):
        move_query(actor=personas["coordinator_b"], query=query, action="answer", text="not mine")


def test_the_panel_opens_answers_and_closes_a_query_without_javascript(client, personas, subjects):
    make_record(personas, subjects)
    subject = subjects["a"]
    client.force_login(personas["monitor"])
    opened = client.post(
        reverse("monitoring:query_open", args=["trial", subject.subject_id, "baseline", "demographics", 1]),
        {"field": "weight", "text": "Source says 72?"},
    )
    query = Query.objects.get()
    assert opened.url == entry_url(subject) + f"#query-{query.pk}"
    client.force_login(personas["coordinator_a"])
    act = reverse("monitoring:query_act", args=["trial", query.pk])
    client.post(act, {"action": "answer", "text": "Corrected to 72."})
    client.force_login(personas["monitor"])
    client.post(act, {"action": "close", "text": "Thanks."})
    query.refresh_from_db()
    assert query.status == "closed"
    assert [(m.author.username, m.action, m.text) for m in query.messages.all()] == [
        ("monitor", "opened", "Source says 72?"),
        ("coordinator_a", "answered", "Corrected to 72."),
        ("monitor", "closed", "Thanks."),
    ]
    page = client.get(entry_url(subject)).content.decode()
    assert "Corrected to 72." in page and 'value="reopen"' in page


def test_a_coordinator_of_the_other_site_cannot_reach_the_query(client, personas, subjects):
    query = query_in("open", personas, make_record(personas, subjects))
    client.force_login(personas["coordinator_b"])
    response = client.post(
        reverse("monitoring:query_act", args=["trial", query.pk]), {"action": "answer", "text": "x"}
    )
    assert response.status_code == 404
