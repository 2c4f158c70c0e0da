"""The study's query list: question, field, age and who must act; filters by site, status, form
and age; a CSV export; a site-limited user sees only their sites' queries."""

import csv
import datetime as dt
import io

from django.urls import reverse
from django.utils import timezone

from capture.records.models import Query
from capture.records.services import move_query, open_query, save_record

LIST = reverse("records:queries", args=["trial"])


def record_of(personas, subject, coordinator):
    return save_record(
        actor=personas[coordinator],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values={"sex": "1", "age": 54, "weight": 70},
    )


def setup_queries(personas, subjects):
    a = record_of(personas, subjects["a"], "coordinator_a")
    b = record_of(personas, subjects["b"], "coordinator_b")
    old = open_query(actor=personas["monitor"], record=a, field="weight", text="Weight 70 kg or lb?")
    Query.objects.filter(pk=old.pk).update(opened_at=timezone.now() - dt.timedelta(days=20))
    answered = open_query(actor=personas["monitor"], record=b, field="age", text="=Age at consent?")
    move_query(actor=personas["coordinator_b"], query=answered, action="answer", text="54 at consent.")
    return old, answered


def rows(client, **params):
    response = client.get(LIST, {**params, "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_it_lists_question_field_age_and_who_must_act(client, personas, subjects):
    old, answered = setup_queries(personas, subjects)
    client.force_login(personas["monitor"])
    found = {r["query"]: r for r in rows(client)}
    assert found[str(old.pk)]["question"] == "Weight 70 kg or lb?"
    assert found[str(old.pk)]["field"] == "weight"
    assert found[str(old.pk)]["age_days"] == "20"
    assert found[str(old.pk)]["who_must_act"] == "Site"
    assert found[str(answered.pk)]["who_must_act"] == "Monitor"
    # A question that looks like a formula is quoted for spreadsheets.
    assert found[str(answered.pk)]["question"] == "'=Age at consent?"
    page = client.get(LIST).content.decode()
    assert "Weight 70 kg or lb?" in page and "Who must act" in page


def test_it_filters_by_site_status_form_and_age(client, personas, subjects):
    old, answered = setup_queries(personas, subjects)
    client.force_login(personas["data_manager"])
    assert [r["query"] for r in rows(client, site="A")] == [str(old.pk)]
    assert [r["query"] for r in rows(client, status="answered")] == [str(answered.pk)]
    assert [r["query"] for r in rows(client, age="14")] == [str(old.pk)]
    assert rows(client, form="lesions") == []
    assert len(rows(client, form="demographics")) == 2
    move_query(actor=personas["monitor"], query=old, action="close")
    assert [r["query"] for r in rows(client)] == [str(answered.pk)]
    assert [r["query"] for r in rows(client, status="closed")] == [str(old.pk)]


def test_a_site_limited_user_sees_only_their_sites_queries(client, personas, subjects):
    old, _answered = setup_queries(personas, subjects)
    client.force_login(personas["coordinator_a"])
    assert [r["query"] for r in rows(client, status="all")] == [str(old.pk)]
    assert rows(client, site="B") == []
    assert "=Age at consent?" not in client.get(LIST, {"status": "all"}).content.decode()
