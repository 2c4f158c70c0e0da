"""A measurement sheet in a real browser (Chromium driven by Playwright): the data manager uploads a
sheet with a unit that is not UCUM and reads the problem in the dry run (no Import button), then
uploads the corrected sheet, sees its columns suggested from the headers, dry-runs, imports, and
imports it again without anything changing (issue 17, item 2)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

from .test_measurement_sheet import GOOD, sheet

pytestmark = pytest.mark.browser


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _run(page, action: str):
    """Press Dry run or Import, wait for its job's page, and go back to the report (tests run jobs
    as the request commits, so the job has finished when its page loads)."""
    mapping_page = page.url.split("#")[0]
    page.click(f"button[name=action][value={action}]")
    page.wait_for_url("**/imports/jobs/**")
    page.goto(mapping_page)
    page.wait_for_selector("#report")
    return page


def _upload(page, index_url: str, path) -> None:
    page.goto(index_url)
    page.set_input_files("input[name=file]", str(path))
    page.check("input[name=kind][value=measurements]")
    page.click("button:has-text('Upload')")
    page.wait_for_selector("form#measurement-mapping")


def test_a_measurement_sheet_is_checked_imported_and_imported_again_in_the_browser(
    live_server,
    study,
    subjects,
    personas,
    media,
    tmp_path,
    browser,  # noqa: F811 - the fixture imported above
):
    bad = sheet(
        tmp_path, subjects, *GOOD[:-1], "{b},2025-04-30,week_8,T1,volume,7.25,cc,,,R2", name="bad.csv"
    )
    good = sheet(tmp_path, subjects, *GOOD, name="good.csv")
    index_url = live_server.url + reverse("imports:index", args=[study.slug])
    context = browser.new_context()
    context.set_default_timeout(60_000)  # a step that never comes fails the test, never hangs it
    page = context.new_page()
    page.goto(index_url)
    page.fill("#id_username", "data_manager")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    _upload(page, index_url, bad)
    page = _run(page, "dry_run")
    assert page.locator("#count-problems").inner_text() == "1"
    assert "'cc' is not a UCUM unit; write 'cm3'." in page.locator("table.problems").inner_text()
    assert page.locator("button[value=commit]").count() == 0

    _upload(page, index_url, good)
    # The columns, suggested from the headers.
    assert page.locator("select[name=lesion_column]").input_value() == "Lesion ID"
    assert page.locator("select[name=unit_column]").input_value() == "Unit"
    page.select_option("select[name=date_format]", "YMD")
    page = _run(page, "dry_run")
    assert page.locator("#count-problems").inner_text() == "0"
    assert page.locator("#count-new").inner_text() == "3"
    page = _run(page, "commit")
    assert "Imported: sheet" in page.locator("#report").inner_text()
    assert page.locator("#count-new").inner_text() == "3"

    page = _run(page, "dry_run")
    page = _run(page, "commit")
    assert (page.locator("#count-new").inner_text(), page.locator("#count-unchanged").inner_text()) == (
        "0",
        "3",
    )
    context.close()
