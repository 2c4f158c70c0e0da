"""Data entry in a real Chromium: branching, calculations, validation, an edit conflict, and the
shared expression vectors run by the browser's interpreter (static/records/expr.js)."""

import os
import tempfile
from pathlib import Path

import pytest
from django.urls import reverse

from capture.definitions.expressions import parse
from tests.conftest import PASSWORD, ROOT
from tests.expressions.test_expressions import VECTORS, same
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

pytestmark = pytest.mark.browser

# The README's pictures are refreshed on request (CAPTURE_SCREENSHOTS=1); otherwise a test run
# leaves the checkout as it found it and the pictures go to a temporary folder.
SHOTS = ROOT / "docs" / "img" if os.environ.get("CAPTURE_SCREENSHOTS") else Path(tempfile.gettempdir())


def log_in(browser, live_server, username):  # noqa: F811 - `browser` is the fixture's value
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Capture serves no favicon; the browser's own request for one is not a page problem.
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(live_server.url) else page.problems.append(r.url))
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies/")
    return page


def entry_url(live_server, subject, event="baseline", form="visit", instance=1):
    return live_server.url + reverse(
        "records:entry", args=["ecrf", subject.subject_id, event, form, instance]
    )


def test_shared_expression_vectors_give_the_same_results_in_chromium(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    cases = [
        {
            "ast": parse(c["expression"]),
            "data": c["data"],
            "events": c.get("events", {}),
            "missing": c.get("missing_codes", VECTORS["missing_codes"]),
        }
        for c in VECTORS["cases"]
    ]
    page = log_in(browser, live_server, "coordinator_a")
    page.goto(entry_url(live_server, ecrf_subjects["a"]))
    results = page.evaluate(
        "cases => cases.map(c => CaptureExpr.evaluate(c.ast, c.data, c.events, c.missing))", cases
    )
    wrong = [
        (c["expression"], got, c["expected"])
        for c, got in zip(VECTORS["cases"], results, strict=True)
        if not same(got, c["expected"])
    ]
    assert wrong == [], f"the browser disagrees with the server on: {wrong}"
    assert page.problems == []


def test_coordinator_enters_a_form_sees_branching_and_calculation_fixes_an_error_and_resolves_a_conflict(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    page = log_in(browser, live_server, "coordinator_a")
    page.goto(live_server.url + reverse("web:subject", args=["ecrf", subject.subject_id]))
    page.click("text=Clinic visit")
    page.wait_for_url("**/baseline/visit/1/edit/")

    page.fill("#i-visit_date", "2025-03-01")
    page.check("#f-sex input[value='2']")
    assert page.locator("#f-pregnant").is_hidden()  # branching: [sex] = '1'
    page.check("#f-sex input[value='1']")
    assert page.locator("#f-pregnant").is_visible()
    page.fill("#i-dob", "1970-05-01")
    assert page.input_value("#i-age") == "54"
    page.fill("#i-weight", "70")
    page.fill("#i-height", "175")
    assert page.input_value("#i-bmi") == "22.9"  # recomputed as the user types
    page.check("#f-symptoms input[value='other']")
    page.fill("#i-other_symptom", "itching")
    page.click("button.add-row")
    page.fill("[name='lesions-0-lesion_site']", "liver")
    page.fill("[name='lesions-0-lesion_diameter']", "12.5")
    page.click("button.add-row")
    page.fill("[name='lesions-1-lesion_diameter']", "20")
    assert page.input_value("#i-sum_diameters") == "32.5"
    page.select_option("#id_status", "2")
    page.click("button:has-text('Save')")

    # Complete needs "pregnant" (visible for a female participant): the error sits at the field.
    error = page.locator("#f-pregnant .error")
    assert "required" in error.inner_text()
    assert page.input_value("#i-weight") == "70"  # nothing typed is lost
    page.check("#f-pregnant input[value='0']")
    page.keyboard.press("Control+s")
    page.wait_for_selector("text=Saved Clinic visit (version 1)")
    # A viewport as tall as the page, so the sticky save bar sits at the bottom of the picture.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    page.screenshot(path=str(SHOTS / "ecrf-entry.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    # A data manager changes the weight (with a reason: the form is Complete) while the coordinator
    # has the form open; the coordinator's save then shows both values.
    other = log_in(browser, live_server, "data_manager")
    other.goto(entry_url(live_server, subject))
    other.fill("#i-weight", "72")
    other.fill("#id_reason", "source document says 72")
    other.click("button:has-text('Save')")
    other.wait_for_selector("text=Saved Clinic visit (version 2)")

    page.fill("#i-weight", "75")
    page.fill("#i-height", "176")
    page.fill("#id_reason", "re-weighed")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=data_manager saved this form (version 2)")
    panel = page.locator("#f-weight fieldset.conflict")
    assert "Keep yours: 75" in panel.inner_text() and "Use theirs: 72" in panel.inner_text()
    page.screenshot(path=str(SHOTS / "ecrf-conflict.png"), full_page=False)
    panel.locator("input[value='mine']").check()
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Saved Clinic visit (version 3)")
    assert page.input_value("#i-weight") == "75" and page.input_value("#i-height") == "176"
    assert page.input_value("#i-bmi") == "24.2"

    # The weight's history is one click away.
    page.click("#f-weight a.hist")
    history = page.locator("#history").inner_text()
    assert "source document says 72" in history and "re-weighed" in history
    assert page.problems == [] and other.problems == []
