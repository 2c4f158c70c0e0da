"""A real Chromium (Debian's package) driven by Playwright through log-in, dashboard and enrolment."""

import os
import shutil

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.requirements import need

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser(live_server, db):
    """Chromium, started after the database fixtures.

    Keep `browser` last in a test's arguments: Playwright's sync API switches greenlets, and
    ORM calls made after it starts open a second database connection that is never closed
    (PostgreSQL then refuses to drop the test database).
    """
    need(os.path.exists(CHROMIUM), f"Debian's chromium ({CHROMIUM})", "apt-get install chromium")
    # Playwright's sync API runs an event loop; Django refuses sync DB calls inside one unless told.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_coordinator_logs_in_enrols_a_subject_and_sees_it_on_the_dashboard(
    live_server, personas, subjects, study, browser
):
    page = browser.new_page()
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(live_server.url + reverse("web:study_list"))
    page.fill("#id_username", "coordinator_a")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("text=Trial")
    expect(page.locator("table.grid")).to_be_visible()
    assert page.locator(f"text={subjects['a'].subject_id}").count() == 1
    assert page.locator(f"text={subjects['b'].subject_id}").count() == 0
    page.click("text=Enrol a subject")
    page.fill("#id_enrollment_date", "2025-04-01")
    page.click("button:has-text('Enrol')")
    page.wait_for_url("**/subjects/A-0003/")
    assert "Enrolled A-0003" in page.content()
    assert external == [], f"the pages fetched assets from outside: {external}"
