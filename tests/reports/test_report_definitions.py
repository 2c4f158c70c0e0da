"""A report's definition is checked against its study when saved: an unknown field, event or sort
field, or filter logic that does not parse or reads fields the study lacks, is refused with a
message that names the problem. Every change is audited with the definition before and after."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from capture.audit.models import AuditEvent
from capture.reports.models import Report
from capture.reports.services import delete_report, save_report


def _refusal(make_report, **definition) -> str:
    with pytest.raises(ValidationError) as caught:
        make_report(**definition)
    assert not Report.objects.exists(), "a refused report must not be saved"
    return " ".join(caught.value.messages)


def test_an_unknown_field_is_refused_by_name(make_report):
    message = _refusal(make_report, fields=["sex", "shoe_size"])
    assert "Not fields of this study: shoe_size" in message


def test_a_report_without_fields_is_refused(make_report):
    assert "Choose at least one field" in _refusal(make_report, fields=[])


def test_filter_logic_that_does_not_parse_is_refused(make_report):
    message = _refusal(make_report, fields=["sex"], filter_logic="[sex] = = '2'")
    assert message.startswith("The filter logic is not valid:")


def test_filter_logic_over_fields_the_study_lacks_is_refused(make_report):
    message = _refusal(make_report, fields=["sex"], filter_logic="[shoe_size] > 40 and [age] > 18")
    assert "reads fields this study does not have: shoe_size." in message


def test_filter_logic_over_an_unknown_event_is_refused(make_report):
    message = _refusal(make_report, fields=["sex"], filter_logic="[week_99][visit_date] <> ''")
    assert "names events this study does not have: week_99" in message


def test_an_unknown_event_is_refused(make_report):
    assert "Not events of this study: week_99_arm_1" in _refusal(
        make_report, fields=["sex"], events=["week_99_arm_1"]
    )


def test_the_sort_field_must_be_one_of_the_reports_fields(make_report):
    message = _refusal(make_report, fields=["sex"], sort_field="age")
    assert "The sort field 'age' is not one of the report's fields" in message


def test_two_reports_of_a_study_may_not_share_a_name(make_report):
    make_report(fields=["sex"])
    assert "has a report named 'Demographics' already" in _refusal_keeping(make_report)


def _refusal_keeping(make_report) -> str:
    with pytest.raises(ValidationError) as caught:
        make_report(fields=["age"])
    return " ".join(caught.value.messages)


def test_checkbox_columns_status_columns_and_checkbox_filters_are_accepted(make_report):
    report = make_report(
        fields=["record_id", "symptoms___pain", "demographics_complete"],
        filter_logic="[symptoms(pain)] = '1' and [demographics_complete] = '2'",
        sort_field="record_id",
    )
    assert report.pk is not None


def test_creating_changing_and_deleting_a_report_is_audited(make_report, personas, study):
    report = make_report(fields=["sex"], filter_logic="[age] >= 18")
    report.fields = ["sex", "age"]
    save_report(actor=personas["admin"], report=report)
    delete_report(actor=personas["admin"], report=report)
    events = list(AuditEvent.objects.filter(study=study, object_type="report").order_by("seq"))
    assert [(e.action, e.actor_label) for e in events] == [
        ("report.create", "data_manager"),
        ("report.update", "admin"),
        ("report.delete", "admin"),
    ]
    assert events[0].before is None
    assert events[0].after == {
        "name": "Demographics",
        "fields": ["sex"],
        "events": [],
        "filter_logic": "[age] >= 18",
        "sort_field": "",
        "sort_descending": False,
    }
    assert events[1].before["fields"] == ["sex"] and events[1].after["fields"] == ["sex", "age"]
    assert events[2].before["fields"] == ["sex", "age"] and events[2].after is None
