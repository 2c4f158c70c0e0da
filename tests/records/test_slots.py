"""The resolved slot (event, event form, form version) is kept per process only while it cannot
change: its form version has records, and no definition row was saved since."""

import pytest

from capture.definitions.models import FormDefinition
from capture.records import slots
from capture.records.models import Status
from capture.records.services import resolve_slot, save_record


@pytest.fixture
def saved_visit(personas, ecrf_subjects):
    return save_record(
        actor=personas["coordinator_a"],
        subject=ecrf_subjects["a"],
        event_name="baseline",
        form_name="visit",
        values={"visit_date": "2025-03-01"},
        status=Status.INCOMPLETE,
    )


def test_a_slot_whose_form_version_has_records_is_resolved_without_a_query(
    ecrf_subjects, saved_visit, django_assert_num_queries
):
    first = resolve_slot(ecrf_subjects["b"], "baseline", "visit")
    with django_assert_num_queries(0):
        again = resolve_slot(ecrf_subjects["b"], "baseline", "visit")
    assert again is first and again.event_form.form_id == saved_visit.form_id


def test_a_slot_whose_form_version_has_no_record_is_read_each_time(ecrf_subjects, django_assert_num_queries):
    resolve_slot(ecrf_subjects["a"], "baseline", "visit")
    with django_assert_num_queries(1):
        resolve_slot(ecrf_subjects["a"], "baseline", "visit")


def test_a_definition_saved_in_the_process_drops_the_kept_slots(
    ecrf_subjects, saved_visit, django_assert_num_queries
):
    resolve_slot(ecrf_subjects["a"], "baseline", "visit")
    form = FormDefinition.objects.get(pk=saved_visit.form_id)
    form.save()
    with django_assert_num_queries(1):
        resolve_slot(ecrf_subjects["a"], "baseline", "visit")


def test_a_kept_slot_expires(ecrf_subjects, saved_visit, django_assert_num_queries, monkeypatch):
    resolve_slot(ecrf_subjects["a"], "baseline", "visit")
    monkeypatch.setattr(slots, "SLOT_TTL", 0.0)
    with django_assert_num_queries(1):
        resolve_slot(ecrf_subjects["a"], "baseline", "visit")
