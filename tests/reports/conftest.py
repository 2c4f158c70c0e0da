"""Reports over the shared trial study (tests/conftest.py) and the API tests' records
(tests/api/conftest.py): A-0001 (site A, demographics complete, lesions at baseline and two
week-8 instances), B-0001 (site B, demographics), and a PDX model with an animal form."""

from __future__ import annotations

import pytest

from capture.reports.models import Report
from capture.reports.services import save_report
from tests.api.conftest import records  # noqa: F401 - a fixture the report tests share

__all__ = ["records"]


@pytest.fixture
def make_report(study, personas):
    def make(name: str = "Demographics", **definition) -> Report:
        report = Report(study=study, name=name, **definition)
        return save_report(actor=personas["data_manager"], report=report)

    return make
