"""A cohort filter sees what the export lets its user see, and nothing more.

The attacks of issue 12 as a statistician: a filter that tests a date of birth or an MRN keeps
exactly the subjects that match, so the subject list of an export (or sixteen of them, one bit
each) recovers the identifier. A de-identified export refuses a filter that names an identifier
item; dates in a filter compare shifted, as the export writes them.
"""

from __future__ import annotations

import csv

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from capture.exports.builder import DatasetBuilder
from capture.exports.spec import ExportSpec
from capture.jobs.models import Job

DOB_DAYS = "datediff('1900-01-01', [date_of_birth], 'd')"


def _build(registry, user, **options):
    return DatasetBuilder(study=registry.study, user=user, spec=ExportSpec(**options))


def _kept(builder) -> list[str]:
    return [s.subject_id for chunk in builder.selected_subject_chunks() for s in chunk]


def _rows(folder, name="dataset.csv") -> list[dict]:
    with (folder / name).open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_filter_on_the_date_of_birth_is_refused_naming_the_item(registry):
    with pytest.raises(ValidationError, match=r"date_of_birth.*identifier") as caught:
        _build(registry, registry.statistician, cohort="[date_of_birth] = '1965-07-03'")
    assert "identified export" in " ".join(caught.value.messages)


@pytest.mark.parametrize("bit", range(16))
def test_one_bit_of_the_date_of_birth_per_export_is_refused(registry, bit):
    # Sixteen of these, one per bit of the days since 1900, would give every date of birth.
    expression = f"rounddown({DOB_DAYS} / {2**bit}) - 2 * rounddown({DOB_DAYS} / {2 ** (bit + 1)}) = 1"
    with pytest.raises(ValidationError, match="date_of_birth"):
        _build(registry, registry.statistician, cohort=expression)


@pytest.mark.parametrize(
    "expression",
    [
        "contains([medical_record_number], '4471')",
        "[baseline][medical_record_number] = 'MRN-4471'",
        "[score] > 1 or [medical_record_number(x)] = '1'",
        "year([baseline][date_of_birth]) < 1966",
    ],
)
def test_any_mention_of_an_identifier_item_is_refused(registry, expression):
    with pytest.raises(ValidationError, match="identifier"):
        _build(registry, registry.statistician, cohort=expression)


def test_a_de_identified_export_refuses_it_even_for_a_role_that_sees_identifiers(registry, run_export):
    # The export's policy decides, not the user's: a de-identified export is de-identified.
    with pytest.raises(ValidationError, match="medical_record_number"):
        run_export(registry.pi, registry.study, cohort="contains([medical_record_number], '4471')")


def test_an_identified_export_may_filter_on_identifiers(registry, run_export):
    _, _, folder = run_export(
        registry.pi,
        registry.study,
        identified=True,
        reason="registry linkage",
        date_mode="none",
        cohort="[date_of_birth] = '1965-07-03'",
    )
    assert [r["subject_id"] for r in _rows(folder)] == [registry.subjects[0].subject_id]


def test_the_builder_page_reports_the_refusal_and_starts_no_job(client, registry):
    client.force_login(registry.statistician)
    response = client.post(
        reverse("exports:builder", args=["registry"]),
        {
            "layout": "wide",
            "formats": ["csv"],
            "checkboxes": "split",
            "date_mode": "shift",
            "cohort": "[date_of_birth] = '1965-07-03'",
        },
    )
    assert response.status_code == 200
    assert "date_of_birth" in response.content.decode()
    assert not Job.objects.exists()


def test_a_date_filter_compares_the_shifted_dates_the_export_writes(registry, run_export):
    # Shifts -100, -10, 0: diagnosed 2025-03-03, 2025-01-01, 2024-11-01 become 2024-11-23,
    # 2024-12-22, 2024-11-01. Before 2024-12-01: the first and the third (real dates: the third).
    first, _, third = (s.subject_id for s in registry.subjects)
    _, _, everyone = run_export(registry.statistician, registry.study)
    by_hand = {r["subject_id"] for r in _rows(everyone) if r["diagnosis_date_baseline"] < "2024-12-01"}
    assert by_hand == {first, third}
    _, _, filtered = run_export(
        registry.statistician, registry.study, cohort="[diagnosis_date] < '2024-12-01'"
    )
    assert {r["subject_id"] for r in _rows(filtered)} == by_hand


def test_an_offset_export_filters_on_the_same_shifted_dates(registry):
    # Days since enrolment in the file; the filter still reads the dates a de-identified user sees.
    first, _, third = (s.subject_id for s in registry.subjects)
    builder = _build(
        registry, registry.statistician, date_mode="offset", cohort="[diagnosis_date] < '2024-12-01'"
    )
    assert _kept(builder) == [first, third]


@pytest.mark.parametrize(
    ("expression", "name"),
    [("[no_such_item] = '1'", "no_such_item"), ("[week_99][score] > 1", "week_99"), ("[scor] > 1", "scor")],
)
def test_an_unknown_name_in_the_filter_is_an_error_not_an_empty_export(registry, expression, name):
    with pytest.raises(ValidationError, match=name):
        _build(registry, registry.statistician, cohort=expression)


def test_a_filter_on_ordinary_items_keeps_working(registry):
    first, second, third = (s.subject_id for s in registry.subjects)
    assert _kept(_build(registry, registry.statistician, cohort="[score] >= 5")) == [first, third]
    assert _kept(_build(registry, registry.statistician, cohort="[baseline][score] < 0")) == [second]
