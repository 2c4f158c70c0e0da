"""The TCIA HNSCC sheet into a new study in a real browser (Chromium driven by Playwright): the data
manager uploads it, maps a few columns, ticks "enrol subjects not yet in the study" with a default
site, reads the dry run's list of new subjects and columns not imported, imports, and imports the
same file again without changing anything (issue 13, done when)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

from .conftest import HNSCC_CSV, need_shared
from .test_sheets import shipped_study

pytestmark = pytest.mark.browser


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _run(page, action: str):
    """Press Dry run or Import, wait for its job's page, and go back to the report. (Tests run jobs
    as the request commits, so the job is finished when its page loads; the page polls while a
    job runs, so the test leaves it at once instead of reading it.)"""
    mapping_page = page.url.split("#")[0]
    page.click(f"button[name=action][value={action}]")
    page.wait_for_url("**/imports/jobs/**")
    page.goto(mapping_page)
    page.wait_for_selector("#report")
    return page


def test_the_tcia_sheet_goes_into_a_new_study_with_its_subjects_enrolled_in_the_browser(
    live_server,
    personas,
    media,
    browser,  # noqa: F811 - the fixture imported above
):
    need_shared(HNSCC_CSV)
    study = shipped_study(personas, slug="hnscc", subject_ids="source")
    context = browser.new_context()
    context.set_default_timeout(60_000)  # a step that never comes fails the test, never hangs it
    page = context.new_page()
    page.goto(live_server.url + reverse("imports:index", args=[study.slug]))
    page.fill("#id_username", "data_manager")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.set_input_files("input[name=file]", str(HNSCC_CSV))
    page.click("button:has-text('Upload')")
    page.wait_for_selector("form.mapping")

    # The suggestion: the TCIA code is the subject id; a patient sheet's columns go to patient forms.
    assert page.locator("select[name=subject_column]").input_value() == "TCIA code"
    # Each column's item is typed or picked from the study's one list of items (a datalist).
    assert page.locator("input[aria-label='Form item for Sex']").input_value() == ""
    assert page.locator("input[aria-label='Form item for HPV status']").input_value() == ""
    for header in ("Last Contact Date", "Date of Death", "Cause of Death"):  # follow-up forms: not now
        page.fill(f"input[aria-label='Form item for {header}']", "")
    page.fill("input[aria-label='Form item for Sex']", "demographics.gender")
    page.fill("input[aria-label='Value map for Sex']", "Female=female; Male=male")
    page.fill("input[aria-label='Form item for Diag']", "diagnosis_stage.primary_diagnosis")
    page.select_option("select[name=date_format]", "DMY")
    page.fill("input[name=two_digit_year_pivot]", "25")
    page.check("input[name=enrol]")
    page.select_option("select[name=site]", "MDA")

    page = _run(page, "dry_run")
    report = page.locator("#report").inner_text()
    assert "Would enrol 215 subject(s)" in report
    assert "Subject ids kept from the sheet; enrolment date from the import date" in report
    assert "HNSCC-01-0001" in page.locator("#enrolment").inner_text()
    assert "Not imported (no mapping): Age, Site, Histology, Grade, T, N, M, Stage, HPV status," in report
    counts = page.locator("dl.counts").inner_text().split()
    assert counts[counts.index("Problems") + 1] == "0"

    page = _run(page, "commit")
    report = page.locator("#report").inner_text()
    assert "Imported: sheet" in report and "Enrolled 215 subject(s)" in report
    counts = page.locator("dl.counts").inner_text().split()
    assert counts[counts.index("New") + 2] == "430"  # demographics and diagnosis for 215 subjects

    # The same file again: every subject found, nothing enrolled, nothing changed.
    page = _run(page, "dry_run")
    page = _run(page, "commit")
    report = page.locator("#report").inner_text()
    assert "Enrolled 0 subject(s)" in report
    counts = page.locator("dl.counts").inner_text().split()
    assert counts[counts.index("New") + 2] == "0" and counts[counts.index("Changed") + 2] == "0"
    assert counts[counts.index("Unchanged") + 2] == "430"
