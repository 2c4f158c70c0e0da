"""Storing measurement reports: lesion identity, new lesions, the queue, corrections, idempotence."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.measurements.models import Lesion, Measurement, MeasurementReport
from capture.measurements.store import Coded, IncomingReport, MeasuredValue, assign_report, store_report

LONG = Coded("SCT", "103339001", "Long Axis")
ENROLLED = dt.date(2025, 3, 1)


def value(lesion: str, mm: str, uid: str = "") -> MeasuredValue:
    return MeasuredValue(tracking_id=lesion, tracking_uid=uid, concept=LONG, value=Decimal(mm), unit="mm")


def store(study, subject, sop: str, day: int, *values, supersedes=None):
    incoming = IncomingReport(sop_uid=sop, date=ENROLLED + dt.timedelta(days=day), values=list(values))
    return store_report(
        actor=SYSTEM,
        study=study,
        subject=subject,
        incoming=incoming,
        source_kind=MeasurementReport.SR,
        source="folder",
        supersedes=supersedes,
    )


@pytest.mark.django_db
def test_baseline_lesions_wait_for_designation_and_later_ones_are_new(study, subjects):
    a = subjects["a"]
    store(study, a, "1.1", 0, value("L1", "30"), value("L2", "12"))
    store(study, a, "1.2", 56, value("L1", "25"), value("L3", "8"))
    roles = dict(Lesion.objects.filter(subject=a).values_list("tracking_id", "role"))
    assert roles == {"L1": "undesignated", "L2": "undesignated", "L3": "new"}
    assert Measurement.objects.filter(lesion__subject=a, lesion__tracking_id="L1").count() == 2


@pytest.mark.django_db
def test_report_date_is_on_the_shifted_calendar_and_falls_in_an_event_window(study, subjects):
    a = subjects["a"]
    report, created = store(study, a, "1.1", 0, value("L1", "30"))
    assert created
    assert report.report_date == ENROLLED + dt.timedelta(days=a.date_shift_days)
    assert report.day_offset() == 0
    assert report.event == a.arm.events.order_by("order").first().name


@pytest.mark.django_db
def test_the_same_report_twice_is_stored_once(study, subjects):
    a = subjects["a"]
    store(study, a, "1.1", 0, value("L1", "30"))
    before = AuditEvent.objects.count()
    _report, created = store(study, a, "1.1", 0, value("L1", "31"))
    assert not created
    assert Measurement.objects.get().value == Decimal("30")
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_tracking_uid_identifies_a_lesion_across_renamed_ids(study, subjects):
    a = subjects["a"]
    store(study, a, "1.1", 0, value("L1", "30", uid="2.25.1"))
    store(study, a, "1.2", 56, value("Liver lesion", "28", uid="2.25.1"))
    assert Lesion.objects.filter(subject=a).count() == 1


@pytest.mark.django_db
def test_a_lesion_id_with_a_different_tracking_uid_is_refused(study, subjects):
    a = subjects["a"]
    store(study, a, "1.1", 0, value("L1", "30", uid="2.25.1"))
    with pytest.raises(ValidationError, match="another tracking UID"):
        store(study, a, "1.2", 56, value("L1", "28", uid="2.25.2"))
    assert MeasurementReport.objects.count() == 1  # nothing half written


@pytest.mark.django_db
def test_a_correction_supersedes_and_cannot_be_corrected_twice(study, subjects):
    a = subjects["a"]
    first, _ = store(study, a, "1.1", 0, value("L1", "30"))
    store(study, a, "1.1c", 0, value("L1", "32"), supersedes=first)
    assert MeasurementReport.objects.get(sop_uid="1.1").superseded_by.sop_uid == "1.1c"
    with pytest.raises(ValidationError, match="already been corrected"):
        store(study, a, "1.1d", 0, value("L1", "33"), supersedes=first)


@pytest.mark.django_db
def test_a_queued_report_keeps_its_values_until_assigned(study, subjects):
    a = subjects["a"]
    report, _ = store(study, None, "9.9", 14, value("L1", "30"))
    assert report.pending_date == ENROLLED + dt.timedelta(days=14)
    assert not Lesion.objects.exists()
    assigned = assign_report(actor=SYSTEM, report=report, subject=a)
    assert assigned.day_offset() == 14
    assert assigned.pending_values == []
    assert Measurement.objects.get().value == Decimal("30")
    with pytest.raises(ValidationError, match="no longer in the queue"):
        assign_report(actor=SYSTEM, report=report, subject=a)
