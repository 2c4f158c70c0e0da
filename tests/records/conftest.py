"""A study on a schedule with branching, calculations, matrix and repeating groups, for the
data-entry tests (tests/records and tests/web). The shared personas get the same roles in it."""

from pathlib import Path

import pytest

from tests.conftest import persona_study, subject_per_site

ECRF_DEFINITIONS = Path(__file__).resolve().parent / "ecrf_definitions"


@pytest.fixture
def ecrf_study(personas, make_user):
    return persona_study(
        make_user, personas, definitions=ECRF_DEFINITIONS, schedule="ecrf", slug="ecrf", name="ECRF trial"
    )


@pytest.fixture
def ecrf_subjects(ecrf_study, personas):
    return subject_per_site(ecrf_study, personas["admin"])
