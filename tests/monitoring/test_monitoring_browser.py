"""The monitoring loop in a real Chromium (Debian's package): a monitor verifies a form and a
coordinator's later change clears it; a query opened on a field is answered and closed from the
entry page."""

import pytest
from django.urls import reverse

from capture.records.services import save_record
from tests.conftest import PASSWORD
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

pytestmark = pytest.mark.browser


def log_in(browser, live_server, username):  # noqa: F811 - `browser` is the fixture's value
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies/")
    return page


def entry(live_server, subject) -> str:
    return live_server.url + reverse(
        "records:entry", args=["trial", subject.subject_id, "baseline", "demographics", 1]
    )


@pytest.fixture
def demographics(personas, subjects):
    return save_record(
        actor=personas["coordinator_a"],
        subject=subjects["a"],
        event_name="baseline",
        form_name="demographics",
        values={"sex": "1", "age": 54, "weight": 70},
    )


def test_a_monitor_verifies_a_form_and_a_coordinators_change_clears_it(
    live_server,
    personas,
    subjects,
    demographics,
    browser,  # noqa: F811
):
    monitor = log_in(browser, live_server, "monitor")
    monitor.goto(entry(live_server, subjects["a"]))
    monitor.click("#verify-form")
    monitor.wait_for_selector("#form-verified")
    assert "Form verified by monitor" in monitor.inner_text("#form-verified")

    coordinator = log_in(browser, live_server, "coordinator_a")
    coordinator.goto(entry(live_server, subjects["a"]))
    coordinator.fill("#i-weight", "72")
    coordinator.click("button.primary[type=submit]")
    coordinator.wait_for_selector("#verification-cleared")
    assert "weight changed in version 2 by coordinator_a" in coordinator.inner_text("#verification-cleared")

    monitor.goto(live_server.url + reverse("web:dashboard", args=["trial"]))
    cell = monitor.locator(f"a.dot[aria-label^='Demographics'][href*='{subjects['a'].subject_id}']").first
    assert cell.get_attribute("aria-label").endswith("verification cleared: a verified value changed")
    assert monitor.problems == [] and coordinator.problems == []


def test_a_query_opened_on_a_field_is_answered_and_closed_from_the_entry_page(
    live_server,
    personas,
    subjects,
    demographics,
    browser,  # noqa: F811
):
    monitor = log_in(browser, live_server, "monitor")
    monitor.goto(entry(live_server, subjects["a"]))
    monitor.click("#f-weight a.qraise")  # the field's own link opens the panel's form on it
    assert monitor.input_value("#query-field") == "weight"
    monitor.fill("#query-text", "Source says 72 kg?")
    monitor.click("#open-query button[type=submit]")
    monitor.wait_for_selector(".mon-query.open")

    coordinator = log_in(browser, live_server, "coordinator_a")
    coordinator.goto(entry(live_server, subjects["a"]))
    query = coordinator.locator(".mon-query.open")
    assert "Source says 72 kg?" in query.inner_text()
    query.locator("textarea").fill("Checked: 70 kg is right.")
    query.locator("button[value=answer]").click()
    coordinator.wait_for_selector(".mon-query.answered")
    assert coordinator.locator(".mon-query.answered button").count() == 0  # the monitor acts next

    monitor.goto(entry(live_server, subjects["a"]))
    answered = monitor.locator(".mon-query.answered")
    assert "Checked: 70 kg is right." in answered.inner_text()
    answered.locator("button[value=close]").click()
    monitor.wait_for_selector(".mon-query.closed")
    assert monitor.locator(".mon-query.closed button[value=reopen]").count() == 1
    assert monitor.problems == [] and coordinator.problems == []
