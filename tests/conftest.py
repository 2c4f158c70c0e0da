"""Shared fixtures: the basic definition set, a study with sites A and B, and personas."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.studies import services
from tests.redcap_coverage import (  # noqa: F401 - the REDCap coverage recorder's hooks, for every test
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)

ROOT = Path(__file__).resolve().parent.parent
BASIC = ROOT / "fixtures" / "definitions" / "basic"
SHARED = ROOT.parent / "shared"

PASSWORD = "correct-horse-battery-staple"

# persona -> (role, site codes). "outsider" belongs to another study only.
PERSONAS = {
    "admin": ("study_admin", []),
    "pi": ("pi", []),
    "data_manager": ("data_manager", []),
    "coordinator_a": ("coordinator", ["A"]),
    "coordinator_b": ("coordinator", ["B"]),
    "statistician": ("statistician", []),
    "monitor": ("monitor", []),
}


@pytest.fixture
def basic_definitions(db):
    load_definitions([BASIC], actor=SYSTEM)
    return Schedule.objects.get(name="basic", version="1.0")


@pytest.fixture
def make_user(db):
    def make(username: str, **extra):
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def study(basic_definitions, make_user):
    owner = make_user("owner", is_staff=True)  # staff create studies
    study = services.create_study(actor=owner, slug="trial", name="Trial", schedule=basic_definitions)
    services.add_site(actor=owner, study=study, code="A", name="Site A")
    services.add_site(actor=owner, study=study, code="B", name="Site B")
    return study


@pytest.fixture
def other_study(basic_definitions, make_user):
    owner = make_user("other_owner", is_staff=True)
    other = services.create_study(actor=owner, slug="other", name="Other", schedule=basic_definitions)
    services.add_site(actor=owner, study=other, code="X", name="Site X")
    return other


@pytest.fixture
def personas(study, other_study, make_user):
    users = {}
    sites = {s.code: s for s in study.sites.all()}
    for name, (role, codes) in PERSONAS.items():
        users[name] = make_user(name)
        services.grant_role(
            actor=SYSTEM, study=study, user=users[name], role=role, sites=[sites[c] for c in codes]
        )
    users["outsider"] = make_user("outsider")
    services.grant_role(actor=SYSTEM, study=other_study, user=users["outsider"], role="study_admin")
    return users


@pytest.fixture
def subjects(study, personas):
    """One patient at each site, and a PDX model derived from the site A patient."""
    sites = {s.code: s for s in study.sites.all()}
    admin = personas["admin"]
    when = dt.date(2025, 3, 1)
    a = services.enroll_subject(actor=admin, study=study, site=sites["A"], enrollment_date=when)
    b = services.enroll_subject(actor=admin, study=study, site=sites["B"], enrollment_date=when)
    model = services.enroll_subject(
        actor=admin,
        study=study,
        site=sites["A"],
        enrollment_date=when,
        kind="animal",
        derived_from=a,
        model_type="PDX",
    )
    return {"a": a, "b": b, "model": model}


def persona_study(make_user, personas, *, definitions: Path, schedule: str, slug: str, name: str):
    """A study on the schedule `schedule` loaded from `definitions`, with sites A and B and the
    personas in the same roles as in `study`: for tests whose forms the basic set lacks (the
    ecrf_study of tests/records, the files_study of tests/files, the shipped study of
    tests/web/test_deidentified_pages.py)."""
    load_definitions([definitions], actor=SYSTEM)
    owner = make_user(f"{slug}_owner", is_staff=True)
    study = services.create_study(
        actor=owner, slug=slug, name=name, schedule=Schedule.objects.get(name=schedule)
    )
    for code in "AB":
        services.add_site(actor=owner, study=study, code=code, name=f"Site {code}")
    sites = {s.code: s for s in study.sites.all()}
    for persona, (role, codes) in PERSONAS.items():
        services.grant_role(
            actor=SYSTEM, study=study, user=personas[persona], role=role, sites=[sites[c] for c in codes]
        )
    return study


def subject_per_site(study, actor) -> dict:
    """Subjects "a" and "b", enrolled by `actor` at sites A and B on 1 March 2025."""
    sites = {s.code: s for s in study.sites.all()}
    when = dt.date(2025, 3, 1)
    return {
        code.lower(): services.enroll_subject(
            actor=actor, study=study, site=sites[code], enrollment_date=when
        )
        for code in "AB"
    }


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped on PostgreSQL: end any session a
    test left connected to it (a worker process or a dropped connection object not yet collected),
    so DROP DATABASE does not fail the last test of the run. What was ended is printed, so a leak
    shows in the log and can be traced to its test."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, left(query, 200) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        left = cursor.fetchall()
        for pid, *_about in left:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if left:
        import sys

        print(f"\nEnded {len(left)} session(s) left on the test database: {left}", file=sys.stderr)
