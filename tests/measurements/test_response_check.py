"""The data quality check `response`: a reader's overall response (the shipped response_assessment
form's overall_response, or the item the study's rule names) against the computed one, per event."""

from __future__ import annotations

import datetime as dt

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.measurements import designation
from capture.measurements.models import ResponseRule
from capture.monitoring import checks
from capture.monitoring.models import Discrepancy
from capture.records.services import save_record
from capture.studies import services
from tests.conftest import ROOT
from tests.measurements.factories import lesion, measure, report


@pytest.fixture
def coclinical(db, make_user):
    """The shipped co-clinical study: a patient whose target goes 40 -> 20 mm (-50 %: PR) between
    baseline (day 0) and on_treatment (day 60), and 20 -> 21 at follow_up (day 180): PR again."""
    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="qin_coclinical", version="1.1")
    study = services.create_study(actor=SYSTEM, slug="cc", name="Co-clinical", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="A", name="Site A")
    manager = make_user("manager")
    services.grant_role(actor=SYSTEM, study=study, user=manager, role="data_manager")
    patient = services.enroll_subject(
        actor=manager, study=study, site=site, enrollment_date=dt.date(2025, 1, 6)
    )
    t1 = lesion(patient, "T1")
    measure(report(patient, 0), t1, 40)
    designation.designate(actor=manager, subject=patient, roles={t1.pk: "target"})
    measure(report(patient, 60), t1, 20)
    measure(report(patient, 180), t1, 21)
    designation.compute.recompute_subject(patient)
    return {"study": study, "patient": patient, "manager": manager}


def _enter(world, event: str, overall: str):
    return save_record(
        actor=world["manager"],
        subject=world["patient"],
        event_name=event,
        form_name="response_assessment",
        values={
            "recist_assessment_date": "2025-03-07",
            "recist_timepoint": "follow_up",
            "overall_response": overall,
        },
    )


def test_a_reader_response_that_disagrees_is_a_discrepancy(coclinical):
    wrong = _enter(coclinical, "on_treatment", "SD")
    _enter(coclinical, "follow_up", "PR")  # agrees: nothing
    checks.run_checks(actor=coclinical["manager"], study=coclinical["study"])
    found = Discrepancy.objects.filter(study=coclinical["study"], rule="response")
    assert [(d.record_id, d.field) for d in found] == [(wrong.pk, "overall_response")]
    assert "(PR, RECIST 1.1" in found[0].message and "SD" not in found[0].message


def test_the_study_names_the_item_or_none(coclinical):
    _enter(coclinical, "on_treatment", "SD")
    ResponseRule.objects.create(study=coclinical["study"], response_item="")
    checks.run_checks(actor=coclinical["manager"], study=coclinical["study"])
    assert not Discrepancy.objects.filter(rule="response").exists()
