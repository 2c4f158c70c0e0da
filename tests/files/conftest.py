"""A study whose form has a file field (fixtures/definitions/files), the shared personas with the
same roles in it, subjects at sites A and B, and file contents in a temporary storage folder."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from capture.files import services as files
from tests.conftest import ROOT, persona_study, subject_per_site

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
    return persona_study(
        make_user,
        personas,
        definitions=FILES_DEFINITIONS,
        schedule="files",
        slug="docs",
        name="Documents trial",
    )


@pytest.fixture
def files_subjects(files_study, personas):
    return subject_per_site(files_study, personas["admin"])


def upload(name: str = "report.png", content: bytes = PNG) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="image/png")


def place(subject, field: str = "scan", event: str = "baseline", instance: int = 1) -> files.Place:
    return files.Place(
        subject=subject, event_name=event, form_name="documents", instance=instance, field=field
    )
