"""Fixtures for the fault tests: committed data (other processes must see it), the media folder the
workers share with the test, a watching connection, and a study with enough subjects to import."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from capture.studies.models import Subject

from .procs import conninfo

SUBJECTS = 300  # rows of the import; the kill does not depend on the size (the test blocks the worker)


@pytest.fixture
def media(transactional_db, settings, tmp_path):
    """MEDIA_ROOT of this test and of the processes it starts (tests/faults/worker_settings.py)."""
    folder = tmp_path / "media"
    folder.mkdir()
    settings.MEDIA_ROOT = folder
    # Jobs wait in the database for the worker processes, as in production.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    return folder


@pytest.fixture
def observer(transactional_db):
    """A second connection, outside Django's, that holds locks and reads pg_stat_activity."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def many_subjects(study, personas):
    """SUBJECTS patients at site A (A-1001 …), made in one insert: set-up, not what is measured."""
    site = study.sites.get(code="A")
    arm = study.schedule.arms.filter(subject_kind=Subject.PATIENT).first()
    Subject.objects.bulk_create(
        Subject(
            study=study,
            site=site,
            arm=arm,
            subject_id=f"A-{1000 + i}",
            seq=1000 + i,
            kind=Subject.PATIENT,
            enrollment_date=dt.date(2024, 1, 1),
            date_shift_days=-30,
        )
        for i in range(1, SUBJECTS + 1)
    )
    return [f"A-{1000 + i}" for i in range(1, SUBJECTS + 1)]
