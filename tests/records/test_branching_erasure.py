"""A value erased because branching hid its field stays in the audit trail: the update's `before`
holds it and the field history shows it (issue 16, entry page item 5)."""

from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.records.services import save_record

VISIT = {
    "visit_date": "2025-03-01",
    "sex": "1",
    "pregnant": "0",
    "symptoms": ["other"],
    "other_symptom": "itch",
}


def test_values_erased_by_branching_stay_in_the_audit_trail_and_the_field_history(
    client, personas, ecrf_subjects
):
    coordinator, subject = personas["coordinator_a"], ecrf_subjects["a"]
    record = save_record(
        actor=coordinator, subject=subject, event_name="baseline", form_name="visit", values=VISIT
    )
    assert record.data["pregnant"] == "0" and record.data["other_symptom"] == "itch"
    changed = {**VISIT, "sex": "2", "symptoms": []}  # hides "pregnant" and "other symptom"
    record = save_record(
        actor=coordinator,
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values=changed,
        expected_version=1,
    )
    assert "pregnant" not in record.data and "other_symptom" not in record.data
    update = AuditEvent.objects.get(object_type="record", action="record.update")
    assert update.before["pregnant"] == "0" and update.after["pregnant"] is None
    assert update.before["other_symptom"] == "itch" and update.after["other_symptom"] is None

    client.force_login(coordinator)
    history = client.get(
        reverse("records:history", args=["ecrf", subject.subject_id, "baseline", "visit", 1, "other_symptom"])
    ).content.decode()
    assert "itch" in history and "(blank)" in history
