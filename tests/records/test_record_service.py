"""The record service: validation from the value domain, versions, locks, audit."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from capture.audit.models import AuditEvent
from capture.records.models import FormRecord, Status
from capture.records.services import EditConflictError, RecordLockedError, RecordValidationError, save_record


def _save(personas, subject, values, **kw):
    kw.setdefault("actor", personas["admin"])
    kw.setdefault("event_name", "baseline")
    kw.setdefault("form_name", "demographics")
    return save_record(subject=subject, values=values, **kw)


def test_values_are_normalised_by_datatype(personas, subjects):
    record = _save(
        personas,
        subjects["a"],
        {
            "sex": "2",
            "age": "54",
            "weight": "70.5",
            "smoker": "yes",
            "symptoms": ["pain", "fatigue"],
            "er_status": "pos",
        },
    )
    assert record.data == {
        "sex": "2",
        "age": 54,
        "weight": 70.5,
        "smoker": "1",
        "symptoms": ["fatigue", "pain"],
        "er_status": "pos",
    }
    assert record.version == 1 and record.form.ref == "demographics@1.0"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"age": "fifty"}, "age", "not a whole number"),
        ({"age": "121"}, "age", "above the maximum 120"),
        ({"weight": "70.55"}, "weight", "more than 1 decimal place"),
        ({"sex": "3"}, "sex", "not one of the choices"),
        ({"initials": "ABCD"}, "initials", "at most 3"),
        ({"symptoms": ["pain", "itch"]}, "symptoms", "itch is not one of the choices"),
        ({"colour": "red"}, "colour", "not an item of form demographics@1.0"),
    ],
)
def test_invalid_values_are_refused_with_the_field_and_reason(personas, subjects, values, field, message):
    with pytest.raises(RecordValidationError) as caught:
        _save(personas, subjects["a"], values)
    assert message in caught.value.field_errors[field]
    assert not FormRecord.objects.exists()


def test_missing_data_codes_are_accepted_in_any_field_and_kept_distinct_from_blank(personas, subjects):
    record = _save(personas, subjects["a"], {"age": "UNK", "sex": "NASK", "weight": ""})
    assert record.data == {"age": "UNK", "sex": "NASK"}


def test_required_items_are_enforced_only_when_marking_complete(personas, subjects):
    _save(personas, subjects["a"], {"weight": "70"}, status=Status.INCOMPLETE)
    with pytest.raises(RecordValidationError) as caught:
        _save(personas, subjects["b"], {"weight": "70"}, status=Status.COMPLETE)
    assert set(caught.value.field_errors) == {"sex", "age"}


def test_repeating_group_rows_are_validated_and_limited(personas, subjects):
    record = _save(
        personas,
        subjects["a"],
        {
            "visit_date": "2025-03-02",
            "target_lesions": [
                {"lesion_site": "liver", "lesion_diameter": "12.5"},
                {"lesion_site": "lung", "lesion_diameter": ""},
            ],
        },
        form_name="lesions",
    )
    assert record.data["target_lesions"] == [
        {"lesion_site": "liver", "lesion_diameter": 12.5},
        {"lesion_site": "lung"},
    ]
    with pytest.raises(RecordValidationError) as caught:
        _save(
            personas, subjects["b"], {"target_lesions": [{"lesion_diameter": "x"}] * 4}, form_name="lesions"
        )
    assert "at most 3" in caught.value.field_errors["target_lesions"]
    assert "not a number" in caught.value.field_errors["target_lesions[1].lesion_diameter"]


def test_saving_over_a_newer_version_raises_a_conflict_and_writes_nothing(personas, subjects):
    first = _save(personas, subjects["a"], {"age": "50"})
    _save(personas, subjects["a"], {"age": "51"}, expected_version=first.version)
    with pytest.raises(EditConflictError) as caught:
        _save(personas, subjects["a"], {"age": "52"}, expected_version=first.version)
    assert caught.value.current.data["age"] == 51
    assert FormRecord.objects.get().data["age"] == 51


def test_locked_record_is_refused(personas, subjects):
    record = _save(personas, subjects["a"], {"age": "50"})
    FormRecord.objects.filter(pk=record.pk).update(locked=True)
    with pytest.raises(RecordLockedError):
        _save(personas, subjects["a"], {"age": "60"}, expected_version=record.version)


def test_update_is_audited_with_only_the_changed_fields(personas, subjects):
    record = _save(personas, subjects["a"], {"age": "50", "sex": "1"})
    _save(personas, subjects["a"], {"age": "51", "sex": "1"}, expected_version=record.version, reason="typo")
    event = AuditEvent.objects.filter(action="record.update").get()
    assert event.before == {"age": 50} and event.after == {"age": 51} and event.reason == "typo"


def test_unchanged_save_writes_no_new_version(personas, subjects):
    record = _save(personas, subjects["a"], {"age": "50"})
    again = _save(personas, subjects["a"], {"age": "50"}, expected_version=1)
    assert again.version == record.version == 1
    assert AuditEvent.objects.filter(action="record.update").count() == 0


def test_coordinator_cannot_write_another_sites_subject(personas, subjects):
    with pytest.raises(PermissionDenied):
        _save(personas, subjects["b"], {"age": "50"}, actor=personas["coordinator_a"])
    with pytest.raises(PermissionDenied):
        _save(personas, subjects["a"], {"age": "50"}, actor=personas["statistician"])
    assert not FormRecord.objects.exists()


def test_form_not_scheduled_at_the_event_is_refused(personas, subjects):
    with pytest.raises(ValidationError, match="not collected at event 'week_8'"):
        _save(personas, subjects["a"], {}, event_name="week_8", form_name="demographics")
    with pytest.raises(ValidationError, match="does not repeat"):
        _save(personas, subjects["a"], {}, form_name="demographics", instance=2)
    second = _save(
        personas,
        subjects["a"],
        {"visit_date": "2025-05-01"},
        event_name="week_8",
        form_name="lesions",
        instance=2,
    )
    assert second.instance == 2
