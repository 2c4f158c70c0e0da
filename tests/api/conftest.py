"""API test helpers: tokens for personas, a few records, a classic (one-event) study. (The recorder
of REDCap API coverage, `@pytest.mark.redcap`, is in tests/redcap_coverage.py.)"""

from __future__ import annotations

import datetime as dt

import pytest

from capture.accounts.system import SYSTEM
from capture.api import tokens
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.records.services import save_record
from capture.studies import services
from tests.conftest import ROOT

CLASSIC = ROOT / "fixtures" / "api" / "classic"

DEMOGRAPHICS = {
    "initials": "ABC",
    "sex": "1",
    "age": 54,
    "weight": "71.5",
    "smoker": "1",
    "symptoms": ["pain", "nausea"],
    "er_status": "pos",
    "pr_status": "neg",
}


@pytest.fixture
def api_tokens(personas):
    """persona -> plain REST API token."""
    return {name: tokens.create_api_token(user=user, name="tests")[1] for name, user in personas.items()}


@pytest.fixture
def redcap_tokens(personas, study):
    """persona -> plain REDCap token for the trial study (the outsider has none: no role there)."""
    return {
        name: tokens.create_redcap_token(user=user, study=study)[1]
        for name, user in personas.items()
        if name != "outsider"
    }


@pytest.fixture
def records(subjects, personas):
    admin = personas["admin"]
    a, b = subjects["a"], subjects["b"]
    out = {
        "a_demo": save_record(
            actor=admin,
            subject=a,
            event_name="baseline",
            form_name="demographics",
            values=DEMOGRAPHICS,
            status=2,
        ),
        "a_lesions": save_record(
            actor=admin,
            subject=a,
            event_name="baseline",
            form_name="lesions",
            values={
                "visit_date": "2025-03-02",
                "target_lesions": [{"lesion_site": "liver", "lesion_diameter": 12.5}],
            },
        ),
        "a_week8_1": save_record(
            actor=admin,
            subject=a,
            event_name="week_8",
            form_name="lesions",
            values={"visit_date": "2025-04-27"},
        ),
        "a_week8_2": save_record(
            actor=admin,
            subject=a,
            event_name="week_8",
            form_name="lesions",
            values={"visit_date": "2025-04-28"},
            instance=2,
        ),
        "b_demo": save_record(
            actor=admin,
            subject=b,
            event_name="baseline",
            form_name="demographics",
            values={**DEMOGRAPHICS, "initials": "XYZ", "sex": "2"},
        ),
        "model": save_record(
            actor=admin,
            subject=subjects["model"],
            event_name="implant",
            form_name="animal",
            values={"strain": "NSG"},
        ),
    }
    return out


@pytest.fixture
def classic_study(basic_definitions, personas):
    """A one-event study (REDCap's classic project) with demographics and a repeating lesions form."""
    load_definitions([CLASSIC], actor=SYSTEM)
    admin = personas["admin"]
    study = services.create_study(
        actor=SYSTEM, slug="classic", name="Classic", schedule=Schedule.objects.get(name="classic")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="C", name="Site C")
    services.grant_role(actor=SYSTEM, study=study, user=admin, role="study_admin")
    services.grant_role(actor=SYSTEM, study=study, user=personas["statistician"], role="statistician")
    subject = services.enroll_subject(
        actor=admin, study=study, site=site, enrollment_date=dt.date(2025, 1, 10)
    )
    save_record(
        actor=admin, subject=subject, event_name="visit", form_name="demographics", values=DEMOGRAPHICS
    )
    save_record(
        actor=admin,
        subject=subject,
        event_name="visit",
        form_name="lesions",
        values={"visit_date": "2025-01-11"},
    )
    save_record(
        actor=admin,
        subject=subject,
        event_name="visit",
        form_name="lesions",
        values={"visit_date": "2025-02-11"},
        instance=2,
    )
    return study
