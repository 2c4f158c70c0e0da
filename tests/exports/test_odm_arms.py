"""ODM export of a study whose arms share event names (REDCap's longitudinal projects have an
"Enrollment" in every arm): each arm's event is its own StudyEventDef, as REDCap's project XML
names them per arm (`Event.enrollment_arm_1`, `Event.enrollment_arm_2`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Arm, Schedule
from capture.exports.writers.odm import NS, validate
from capture.records.services import save_record
from capture.studies import services

TWO_ARMS = Path(__file__).resolve().parent / "definitions" / "two_arms"
NSMAP = {"o": NS}


@pytest.fixture
def two_arm_study(make_user):
    load_definitions([TWO_ARMS], actor=SYSTEM)
    schedule = Schedule.objects.get(name="two_arms", version="1.0")
    study = services.create_study(actor=SYSTEM, slug="two-arms", name="Two arms", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="A", name="Site A")
    statistician = make_user("two_arms_statistician")
    services.grant_role(actor=SYSTEM, study=study, user=statistician, role="statistician", sites=[])
    arms = {a.name: a for a in Arm.objects.filter(schedule=schedule)}
    when = dt.date(2025, 3, 1)
    for arm, doses in (("drug_a", (10, 20)), ("drug_b", (30, 40))):
        subject = services.enroll_subject(
            actor=SYSTEM, study=study, site=site, enrollment_date=when, arm=arms[arm]
        )
        for event, dose in zip(("enrollment", "final_visit"), doses, strict=True):
            save_record(
                actor=SYSTEM,
                subject=subject,
                event_name=event,
                form_name="dose",
                values={"dose_mg": dose},
                status=2,
                instance=1,
            )
    return study, statistician


def test_odm_of_two_arms_sharing_event_names_has_one_event_per_arm(two_arm_study, run_export):
    study, statistician = two_arm_study
    _, _, folder = run_export(statistician, study, formats=["odm"])
    path = folder / "odm.xml"
    assert validate(path) == []
    tree = etree.parse(str(path))
    defs = {d.get("OID"): d.get("Name") for d in tree.iterfind(".//o:StudyEventDef", NSMAP)}
    assert defs == {
        "SE.drug_a.enrollment": "Enrollment (Arm 1: Drug A)",
        "SE.drug_a.final_visit": "Final visit (Arm 1: Drug A)",
        "SE.drug_b.enrollment": "Enrollment (Arm 2: Drug B)",
        "SE.drug_b.final_visit": "Final visit (Arm 2: Drug B)",
    }
    refs = [r.get("StudyEventOID") for r in tree.iterfind(".//o:Protocol/o:StudyEventRef", NSMAP)]
    assert refs == list(defs)
    doses = {
        (s.get("SubjectKey"), e.get("StudyEventOID")): e.find(".//o:ItemData", NSMAP).get("Value")
        for s in tree.iterfind(".//o:SubjectData", NSMAP)
        for e in s.iterfind("o:StudyEventData", NSMAP)
    }
    assert doses == {
        ("A-0001", "SE.drug_a.enrollment"): "10",
        ("A-0001", "SE.drug_a.final_visit"): "20",
        ("A-0002", "SE.drug_b.enrollment"): "30",
        ("A-0002", "SE.drug_b.final_visit"): "40",
    }


def test_odm_keeps_plain_event_oids_when_names_do_not_repeat(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["odm"])
    tree = etree.parse(str(folder / "odm.xml"))
    oids = {d.get("OID") for d in tree.iterfind(".//o:StudyEventDef", NSMAP)}
    assert "SE.baseline" in oids
    assert "SE.implant" in oids
