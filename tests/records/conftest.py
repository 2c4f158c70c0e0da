"""A study on a schedule with branching, calculations, matrix and repeating groups, for the
data-entry tests (tests/records and tests/web). The shared personas get the same roles in it."""

import datetime as dt
from pathlib import Path

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.studies import services
from tests.conftest import PERSONAS

ECRF_DEFINITIONS = Path(__file__).resolve().parent / "ecrf_definitions"


@pytest.fixture
def ecrf_study(personas, make_user):
    load_definitions([ECRF_DEFINITIONS], actor=SYSTEM)
    schedule = Schedule.objects.get(name="ecrf")
    owner = make_user("ecrf_owner")
    study = services.create_study(actor=owner, slug="ecrf", name="ECRF trial", schedule=schedule)
    for code in "AB":
        services.add_site(actor=owner, study=study, code=code, name=f"Site {code}")
    sites = {s.code: s for s in study.sites.all()}
    for name, (role, codes) in PERSONAS.items():
        services.grant_role(
            actor=SYSTEM, study=study, user=personas[name], role=role, sites=[sites[c] for c in codes]
        )
    return study


@pytest.fixture
def ecrf_subjects(ecrf_study, personas):
    sites = {s.code: s for s in ecrf_study.sites.all()}
    when = dt.date(2025, 3, 1)
    enrol = services.enroll_subject
    return {
        "a": enrol(actor=personas["admin"], study=ecrf_study, site=sites["A"], enrollment_date=when),
        "b": enrol(actor=personas["admin"], study=ecrf_study, site=sites["B"], enrollment_date=when),
    }
