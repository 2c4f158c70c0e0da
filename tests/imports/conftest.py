"""Fixtures for import tests: studies built from fixtures/imports/ and file-writing helpers."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.studies import services as study_services
from tests.conftest import ROOT, SHARED
from tests.requirements import need_shared  # noqa: F401 - the import tests take it from here

IMPORT_FIXTURES = ROOT / "fixtures" / "imports"
HNSCC_CSV = SHARED / "data" / "clinical" / "tcia_hnscc_clinical_mdacc.csv"
REDCAP = SHARED / "data" / "redcap"


@pytest.fixture
def hnscc_study(db, personas):
    """A study on the HNSCC schedule whose subject ids are the TCIA codes (HNSCC-01-0001 …)."""
    load_definitions([IMPORT_FIXTURES / "hnscc"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="hnscc")
    study = study_services.create_study(
        actor=SYSTEM,
        slug="HNSCC",
        name="HNSCC",
        schedule=schedule,
        subject_id_pattern="{study}-{site}-{seq:04d}",
    )
    site = study_services.add_site(actor=SYSTEM, study=study, code="01", name="MD Anderson")
    for role in ("data_manager", "admin", "statistician"):
        study_services.grant_role(
            actor=SYSTEM, study=study, user=personas[role], role={"admin": "study_admin"}.get(role, role)
        )
    study_services.grant_role(
        actor=SYSTEM, study=study, user=personas["coordinator_a"], role="coordinator", sites=[site]
    )
    # The system actor: a superuser to the permission check, which then reads nothing (215 enrolments).
    study.enrol = lambda n: [
        study_services.enroll_subject(
            actor=SYSTEM, study=study, site=site, enrollment_date=dt.date(2020, 1, 1)
        )
        for _ in range(n)
    ]
    return study


@pytest.fixture
def hnscc_mapping():
    return json.loads((IMPORT_FIXTURES / "hnscc" / "mapping.json").read_text())


def write_xlsx(path, rows, *, title="Data", merges=(), extra_sheets=None):
    """Write rows (lists) to an .xlsx with openpyxl; `merges` like ["B1:C1"]."""
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.title = title
    for row in rows:
        ws.append(row)
    for rng in merges:
        ws.merge_cells(rng)
    for name, sheet_rows in (extra_sheets or {}).items():
        other = book.create_sheet(name)
        for row in sheet_rows:
            other.append(row)
    book.save(path)
    return path


@pytest.fixture
def trial(study, personas, subjects):
    """The basic study with subjects A-0001 (site A), B-0001 (site B) and the model A-0002."""
    return study


@pytest.fixture
def redcap_study(db, personas):
    load_definitions([IMPORT_FIXTURES / "redcap_repeating"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="redcap_repeating")
    study = study_services.create_study(
        actor=SYSTEM, slug="rc", name="REDCap repeating", schedule=schedule, subject_id_pattern="{seq}"
    )
    site = study_services.add_site(actor=SYSTEM, study=study, code="R", name="REDCap site")
    study_services.grant_role(actor=SYSTEM, study=study, user=personas["data_manager"], role="data_manager")
    for _ in range(2):
        study_services.enroll_subject(
            actor=personas["data_manager"], study=study, site=site, enrollment_date=dt.date(2019, 1, 1)
        )
    return study
