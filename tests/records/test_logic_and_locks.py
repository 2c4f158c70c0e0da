"""The record service with branching, calculations, reasons for change, locks, signatures and queries."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from capture.audit.models import AuditEvent
from capture.records import services
from capture.records.models import FormRecord, Query, Status
from capture.records.services import (
    EditConflictError,
    ReasonRequiredError,
    RecordLockedError,
    RecordValidationError,
    save_record,
)
from tests.conftest import PASSWORD

VISIT = {
    "visit_date": "2025-03-01",
    "sex": "1",
    "pregnant": "0",
    "dob": "1970-05-01",
    "weight": "70",
    "height": "175",
}


def _visit(personas, subject, values=None, **kw):
    kw.setdefault("actor", personas["coordinator_a"])
    return save_record(
        subject=subject, event_name="baseline", form_name="visit", values=values or dict(VISIT), **kw
    )


def test_calculated_fields_are_computed_by_the_server_whatever_was_submitted(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"], {**VISIT, "bmi": "99.9", "age": "3"})
    assert record.data["bmi"] == 22.9
    assert record.data["age"] == 54


def test_sum_over_a_repeating_group_and_blank_rows_are_dropped(personas, ecrf_subjects):
    values = {
        **VISIT,
        "lesions": [{"lesion_site": "liver", "lesion_diameter": "12.5"}, {}, {"lesion_diameter": "UNK"}],
    }
    record = _visit(personas, ecrf_subjects["a"], values)
    assert record.data["sum_diameters"] == 12.5
    assert record.data["lesions"] == [
        {"lesion_site": "liver", "lesion_diameter": 12.5},
        {"lesion_diameter": "UNK"},
    ]


def test_value_of_a_field_hidden_by_branching_is_dropped_and_kept_in_the_audit(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"], {**VISIT, "pregnant": "1"})
    assert record.data["pregnant"] == "1"
    record = _visit(personas, ecrf_subjects["a"], {**VISIT, "sex": "2", "pregnant": "1"}, expected_version=1)
    assert "pregnant" not in record.data
    update = AuditEvent.objects.get(action="record.update")
    assert update.before["pregnant"] == "1" and update.after["pregnant"] is None


def test_hidden_required_field_is_not_required_and_its_bad_value_does_not_block(personas, ecrf_subjects):
    values = {**VISIT, "sex": "2", "pregnant": "maybe"}
    record = _visit(personas, ecrf_subjects["a"], values, status=Status.COMPLETE)
    assert record.status == Status.COMPLETE and "pregnant" not in record.data
    with pytest.raises(RecordValidationError) as caught:
        _visit(
            personas,
            ecrf_subjects["b"],
            {**VISIT, "pregnant": ""},
            actor=personas["admin"],
            status=Status.COMPLETE,
        )
    assert set(caught.value.field_errors) == {"pregnant"}


def test_checkbox_code_drives_branching(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"], {**VISIT, "symptoms": ["pain"], "other_symptom": "itch"})
    assert "other_symptom" not in record.data
    record = _visit(
        personas,
        ecrf_subjects["a"],
        {**VISIT, "symptoms": ["other"], "other_symptom": "itch"},
        expected_version=1,
    )
    assert record.data["other_symptom"] == "itch"


def test_calculation_can_read_another_event_of_the_same_subject(personas, ecrf_subjects):
    _visit(personas, ecrf_subjects["a"])
    record = save_record(
        actor=personas["coordinator_a"],
        subject=ecrf_subjects["a"],
        event_name="follow_up",
        form_name="treatment",
        values={"agent": "cisplatin", "weight": "67.5"},
        instance=2,
    )
    assert record.data["weight_change"] == -2.5


def test_a_calculated_value_out_of_range_is_reported_on_the_calculated_field(personas, ecrf_subjects):
    with pytest.raises(RecordValidationError) as caught:
        _visit(personas, ecrf_subjects["a"], {**VISIT, "dob": "1800-01-01"})
    assert "Age at visit (calculated): is above the maximum 120" in caught.value.field_errors["age"]


def test_changing_a_complete_form_needs_a_reason_which_is_audited(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"], status=Status.COMPLETE)
    with pytest.raises(ReasonRequiredError):
        _visit(
            personas, ecrf_subjects["a"], {**VISIT, "weight": "71"}, expected_version=record.version, status=2
        )
    assert FormRecord.objects.get().data["weight"] == 70.0
    _visit(
        personas,
        ecrf_subjects["a"],
        {**VISIT, "weight": "71"},
        expected_version=1,
        status=2,
        reason="scale recalibrated",
    )
    assert AuditEvent.objects.get(action="record.update").reason == "scale recalibrated"


def test_an_unchanged_save_of_a_complete_form_needs_no_reason(personas, ecrf_subjects):
    _visit(personas, ecrf_subjects["a"], status=Status.COMPLETE)
    assert _visit(personas, ecrf_subjects["a"], expected_version=1, status=Status.COMPLETE).version == 1


def test_conflict_is_raised_through_the_service_for_any_caller(personas, ecrf_subjects):
    _visit(personas, ecrf_subjects["a"])
    _visit(
        personas,
        ecrf_subjects["a"],
        {**VISIT, "weight": "72"},
        expected_version=1,
        actor=personas["data_manager"],
    )
    with pytest.raises(EditConflictError):
        _visit(personas, ecrf_subjects["a"], {**VISIT, "weight": "73"}, expected_version=1)


def test_locked_record_refuses_every_write_until_unlocked(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"])
    dm = personas["data_manager"]
    with pytest.raises(ValidationError, match="reason"):
        services.set_record_lock(actor=dm, record=record, locked=True, reason="")
    services.set_record_lock(actor=dm, record=record, locked=True, reason="interim analysis")
    with pytest.raises(RecordLockedError):
        _visit(
            personas,
            ecrf_subjects["a"],
            {**VISIT, "weight": "80"},
            expected_version=1,
            actor=personas["admin"],
        )
    services.set_record_lock(actor=dm, record=record, locked=False, reason="query answered")
    assert _visit(personas, ecrf_subjects["a"], {**VISIT, "weight": "80"}, expected_version=1).version == 2
    actions = list(AuditEvent.objects.filter(object_type="record").values_list("action", "reason"))
    assert ("record.lock", "interim analysis") in actions and ("record.unlock", "query answered") in actions


def test_only_a_lock_role_may_lock(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"])
    for who in ("coordinator_a", "monitor", "statistician", "pi"):
        with pytest.raises(PermissionDenied):
            services.set_record_lock(actor=personas[who], record=record, locked=True, reason="x")


def test_locked_subject_refuses_new_and_changed_records_and_unlock_restores_record_locks(
    personas, ecrf_subjects
):
    subject = ecrf_subjects["a"]
    first = _visit(personas, subject)
    dm = personas["data_manager"]
    services.set_subject_lock(actor=dm, subject=subject, locked=True, reason="database lock")
    assert FormRecord.objects.get(pk=first.pk).locked  # the flag every other write path checks
    with pytest.raises(RecordLockedError, match="unlock the subject"):
        save_record(
            actor=personas["coordinator_a"],
            subject=subject,
            event_name="follow_up",
            form_name="treatment",
            values={"agent": "x"},
        )
    with pytest.raises(ValidationError, match="unlock the subject instead"):
        services.set_record_lock(actor=dm, record=first, locked=False, reason="x")
    services.set_subject_lock(actor=dm, subject=subject, locked=False, reason="reopened for corrections")
    assert not FormRecord.objects.get(pk=first.pk).locked


def test_pi_signs_with_the_password_and_a_later_change_makes_the_signature_stale(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"], status=Status.COMPLETE)
    pi = personas["pi"]
    with pytest.raises(ValidationError, match="password is not correct"):
        services.sign_record(actor=pi, record=record, password="wrong")
    signature = services.sign_record(actor=pi, record=record, password=PASSWORD)
    assert signature.current and AuditEvent.objects.filter(action="record.sign").count() == 1
    _visit(
        personas, ecrf_subjects["a"], {**VISIT, "weight": "71"}, expected_version=1, status=2, reason="typo"
    )
    signature.refresh_from_db()
    assert not signature.current
    with pytest.raises(PermissionDenied):
        services.sign_record(actor=personas["data_manager"], record=record, password=PASSWORD)


def test_incomplete_form_cannot_be_signed(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"])
    with pytest.raises(ValidationError, match="Only a Complete form"):
        services.sign_record(actor=personas["pi"], record=record, password=PASSWORD)


def test_query_moves_open_answered_closed_and_each_step_is_audited(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"])
    query = services.open_query(
        actor=personas["monitor"], record=record, field="weight", text="Source says 72 kg?"
    )
    assert query.status == Query.OPEN
    query = services.answer_query(actor=personas["coordinator_a"], query=query, text="Corrected.")
    assert query.status == Query.ANSWERED
    query = services.close_query(actor=personas["monitor"], query=query)
    assert query.status == Query.CLOSED
    assert [m.action for m in query.messages.all()] == ["opened", "answered", "closed"]
    assert AuditEvent.objects.filter(object_type="query").count() == 3


def test_query_roles_and_sites_are_enforced(personas, ecrf_subjects):
    record = _visit(personas, ecrf_subjects["a"])
    with pytest.raises(PermissionDenied):
        services.open_query(actor=personas["coordinator_a"], record=record, field="weight", text="?")
    query = services.open_query(actor=personas["data_manager"], record=record, field="weight", text="?")
    with pytest.raises(PermissionDenied):
        services.answer_query(actor=personas["coordinator_b"], query=query, text="not my site")
    with pytest.raises(ValidationError, match="not a field"):
        services.open_query(actor=personas["monitor"], record=record, field="colour", text="?")


def test_removing_a_repeating_instance_needs_a_reason_and_keeps_the_values_in_the_audit(
    personas, ecrf_subjects
):
    record = save_record(
        actor=personas["coordinator_a"],
        subject=ecrf_subjects["a"],
        event_name="follow_up",
        form_name="treatment",
        values={"agent": "typo"},
        instance=3,
    )
    with pytest.raises(ValidationError, match="reason"):
        services.delete_instance(actor=personas["coordinator_a"], record=record, reason=" ")
    services.delete_instance(actor=personas["coordinator_a"], record=record, reason="entered twice")
    assert not FormRecord.objects.exists()
    event = AuditEvent.objects.get(action="record.delete")
    assert event.before["data"] == {"agent": "typo"} and event.reason == "entered twice"
    visit = _visit(personas, ecrf_subjects["a"])
    with pytest.raises(ValidationError, match="does not repeat"):
        services.delete_instance(actor=personas["admin"], record=visit, reason="x")


def test_a_signed_repeating_instance_is_not_removed_and_keeps_its_signature(personas, ecrf_subjects):
    record = save_record(
        actor=personas["coordinator_a"],
        subject=ecrf_subjects["a"],
        event_name="follow_up",
        form_name="treatment",
        values={"agent": "cisplatin"},
        instance=2,
        status=Status.COMPLETE,
    )
    services.sign_record(actor=personas["pi"], record=record, password=PASSWORD)
    with pytest.raises(ValidationError, match="signed"):
        services.delete_instance(actor=personas["coordinator_a"], record=record, reason="entered twice")
    assert FormRecord.objects.get(pk=record.pk).signatures.count() == 1
    assert not AuditEvent.objects.filter(action="record.delete").exists()
