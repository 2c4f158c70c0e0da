"""The data-entry study fixtures are shared with tests/records."""

from tests.records.conftest import ecrf_study, ecrf_subjects  # noqa: F401 - fixtures, used by name
