"""The data-entry page's database work is bounded (issue 9's benchmark): a regression that adds
a query per field, per permission or per audit step fails here.

The counts include the session read and the log-in user; the session is written back at most once a
minute (capture.accounts.sessions), and the page opened before counting has just renewed it. A form version is compiled once per
process (two more queries the first time), so each test opens the page once before counting. If a
change needs one more query, raise the bound here and say why in the commit.
"""

import pytest
from django.urls import reverse

from capture.audit.services import verify_all
from capture.definitions.models import FormDefinition
from capture.records import compiled
from capture.records.models import FormRecord, Status
from capture.records.services import resolve_slot, save_record

VISIT = {
    "visit_date": "2025-03-01",
    "sex": "1",
    "pregnant": "0",
    "dob": "1970-05-01",
    "weight": "70",
    "height": "175",
}
# session, user, study, permissions, subject, its sites, record (and whether it has open
# queries); the open queries by field only when there are some. The slot (event form and its
# form's stamp) is kept per process once its form version has records (records/slots.py).
# The monitoring panel (capture/monitoring/panel.py): the record's verification marks, and the
# messages of its queries with their queries.
GET_QUERIES = 9
# as GET up to the record (6); then in one transaction (savepoint … release): the record read
# once, locked (and its subject's lock read), the update, the audit chain head moved
# (UPDATE … RETURNING), the event, the head's hash (one statement with the event on PostgreSQL)
POST_QUERIES = 13


def _url(subject, event="baseline", form="visit", instance=1):
    return reverse("records:entry", args=[subject.study.slug, subject.subject_id, event, form, instance])


def _opened(client, user, url):
    client.force_login(user)
    assert client.get(url).status_code == 200  # compiles the form version in this process
    return url


@pytest.fixture
def visit(personas, ecrf_subjects):
    return save_record(
        actor=personas["coordinator_a"],
        subject=ecrf_subjects["a"],
        event_name="baseline",
        form_name="visit",
        values=dict(VISIT),
        status=Status.UNVERIFIED,
    )


def test_entry_page_get_uses_a_fixed_number_of_queries(
    client, personas, ecrf_subjects, visit, django_assert_max_num_queries
):
    url = _opened(client, personas["coordinator_a"], _url(ecrf_subjects["a"]))
    with django_assert_max_num_queries(GET_QUERIES):
        response = client.get(url)
    assert response.status_code == 200 and b'name="weight" inputmode="decimal"' in response.content


def test_entry_page_get_of_a_repeating_form_reading_another_event_stays_bounded(
    client, personas, ecrf_subjects, visit, django_assert_max_num_queries
):
    url = _opened(client, personas["coordinator_a"], _url(ecrf_subjects["a"], "follow_up", "treatment"))
    # no record: the subject's lock instead; + the other events' values, + the instances; + the
    # slot, since no record uses this form version yet (so it could still be reloaded in place)
    with django_assert_max_num_queries(GET_QUERIES + 4):
        response = client.get(url)
    assert response.status_code == 200


def test_entry_page_post_saves_and_audits_in_a_fixed_number_of_queries(
    client, personas, ecrf_subjects, visit, django_assert_max_num_queries
):
    url = _opened(client, personas["coordinator_a"], _url(ecrf_subjects["a"]))
    data = {**VISIT, "weight": "71", "__status": str(Status.UNVERIFIED), "__version": str(visit.version)}
    with django_assert_max_num_queries(POST_QUERIES):
        response = client.post(url, data)
    assert response.status_code == 302
    record = FormRecord.objects.get(pk=visit.pk)
    assert record.version == visit.version + 1 and record.data["weight"] == 71
    assert verify_all()[1] == []


def test_entry_page_post_of_a_new_record_stays_bounded(
    client, personas, ecrf_subjects, django_assert_max_num_queries
):
    url = _opened(client, personas["coordinator_a"], _url(ecrf_subjects["a"]))
    data = {**VISIT, "__status": str(Status.INCOMPLETE), "__version": ""}
    # no record to lock: the subject's lock is read on its own; the record is inserted inside a
    # savepoint (SAVEPOINT, RELEASE), so a concurrent first save becomes an edit conflict
    with django_assert_max_num_queries(POST_QUERIES + 4):
        response = client.post(url, data)
    assert response.status_code == 302
    assert FormRecord.objects.filter(subject=ecrf_subjects["a"], form_name="visit").count() == 1


def test_entry_page_post_by_a_read_only_role_is_refused_before_any_write(
    client, personas, ecrf_subjects, visit
):
    client.force_login(personas["monitor"])
    data = {**VISIT, "weight": "99", "__status": "1", "__version": str(visit.version)}
    assert client.post(_url(ecrf_subjects["a"]), data).status_code == 403
    assert FormRecord.objects.get(pk=visit.pk).version == visit.version


def test_form_stamp_read_with_the_slot_is_the_compiled_cache_key(ecrf_subjects):
    # If the two differed, pages and the record service would recompile the form by turns.
    for event, form in (("baseline", "visit"), ("follow_up", "treatment")):
        slot = resolve_slot(ecrf_subjects["a"], event, form)
        fresh = FormDefinition.objects.get(pk=slot.event_form.form_id)
        assert slot.event_form.form.__dict__["_compiled_key"] == compiled._key(fresh)
