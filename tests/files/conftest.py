"""A study whose form has a file field (fixtures/definitions/files), the shared personas with the
same roles in it, subjects at sites A and B, and file contents in a temporary storage folder."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.files import services as files
from capture.studies import services
from tests.conftest import PERSONAS, ROOT

FILES_DEFINITIONS = ROOT / "fixtures" / "definitions" / "files"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def file_storage(settings, tmp_path):
    """File contents go to a folder of this test (the named storage, as a deployment sets it)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "capture_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "capture_files"},
        },
    }
    return tmp_path / "capture_files"


@pytest.fixture
def files_study(personas, make_user):
    load_definitions([FILES_DEFINITIONS], actor=SYSTEM)
    owner = make_user("files_owner", is_staff=True)
    study = services.create_study(
        actor=owner, slug="docs", name="Documents trial", schedule=Schedule.objects.get(name="files")
    )
    for code in "AB":
        services.add_site(actor=owner, study=study, code=code, name=f"Site {code}")
    sites = {s.code: s for s in study.sites.all()}
    for name, (role, codes) in PERSONAS.items():
        services.grant_role(
            actor=SYSTEM, study=study, user=personas[name], role=role, sites=[sites[c] for c in codes]
        )
    return study


@pytest.fixture
def files_subjects(files_study, personas):
    sites = {s.code: s for s in files_study.sites.all()}
    when = dt.date(2025, 3, 1)
    enrol = services.enroll_subject
    return {
        code.lower(): enrol(
            actor=personas["admin"], study=files_study, site=sites[code], enrollment_date=when
        )
        for code in "AB"
    }


def upload(name: str = "report.png", content: bytes = PNG) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="image/png")


def place(subject, field: str = "scan", event: str = "baseline", instance: int = 1) -> files.Place:
    return files.Place(
        subject=subject, event_name=event, form_name="documents", instance=instance, field=field
    )
