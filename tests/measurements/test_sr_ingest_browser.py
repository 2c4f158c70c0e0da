"""In Chromium: a data manager uploads a zip of measurement reports on the imaging page, sees
them stored on the job page and the subject's reports listed, and assigns the unknown patient's
report from the measurement queue."""

import zipfile

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from capture.accounts.system import SYSTEM
from capture.imaging import services as imaging
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name
from tests.web.test_ecrf_browser import log_in

from . import srfixtures

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def reports_zip(tmp_path, subjects):
    imaging.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="patient_id", value=srfixtures.PATIENT)
    srfixtures.patient_series(tmp_path / "in", with_images=False)
    srfixtures.one_report(
        tmp_path / "in" / "other" / "1.dcm", patient_id="MRN-UNKNOWN", date="20250301", seed="u"
    )
    target = tmp_path / "reports.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted((tmp_path / "in").rglob("*.dcm")):
            archive.write(path, path.relative_to(tmp_path / "in"))
    return target


def test_a_data_manager_uploads_reports_and_assigns_the_queued_one(
    live_server,
    personas,
    reports_zip,
    browser,  # noqa: F811
):
    page = log_in(browser, live_server, "data_manager")
    page.goto(live_server.url + reverse("imaging:ingest", args=["trial"]))
    page.set_input_files("input[type=file]", str(reports_zip))
    page.click("button:has-text('Upload and ingest')")
    page.wait_for_selector("dt:has-text('Measurement reports')")
    assert "4 stored (3 linked, 1 queued)" in page.inner_text("main")

    page.click("a.button:has-text('Measurement reports')")
    rows = page.locator("#reports tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("td").nth(3).inner_text() for i in range(3)] == ["baseline", "week_8", "—"]

    page.goto(live_server.url + reverse("measurements:queue", args=["trial"]))
    queued = page.locator("#queue tbody tr")
    expect(queued).to_have_count(1)
    queued.locator("select").select_option("B-0001")
    queued.locator("button:has-text('Assign')").click()
    page.wait_for_selector("text=Report assigned to B-0001")
    assert "The queue is empty" in page.inner_text("main")
    assert page.problems == []
