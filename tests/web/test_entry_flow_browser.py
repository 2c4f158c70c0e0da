"""The entry page's rough edges in a real Chromium (issue 16, entry page items 5, 7 and 10): hiding
a field that holds a value asks first, the Save buttons go where they say, a refused save puts the
focus where attention is needed, and a phone-sized screen needs no sideways scrolling."""

import pytest
from django.urls import reverse

from capture.records.models import FormRecord, Status
from capture.records.services import save_record
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name
from tests.web.test_ecrf_browser import entry_url, log_in

pytestmark = pytest.mark.browser

VISIT = {"visit_date": "2025-03-01", "sex": "1", "pregnant": "0", "weight": "70", "height": "175"}


def test_hiding_a_filled_field_asks_first_and_cancel_keeps_the_answer(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    page = log_in(browser, live_server, "coordinator_a")
    page.goto(entry_url(live_server, subject))
    page.fill("#i-visit_date", "2025-03-01")
    page.check("#f-sex input[value='1']")
    page.check("#f-pregnant input[value='0']")
    page.check("#f-symptoms input[value='other']")
    page.fill("#i-other_symptom", "itching")

    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#f-sex input[value='2']")  # hides "pregnant", which holds an answer
    assert len(asked) == 1 and "Currently pregnant?" in asked[0]
    assert page.is_checked("#f-sex input[value='1']"), "Cancel puts the earlier answer back"
    assert page.locator("#f-pregnant").is_visible() and page.is_checked("#f-pregnant input[value='0']")

    # Unticking "other" would hide the text typed for it: asked, and this time confirmed.
    asked.clear()

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.uncheck("#f-symptoms input[value='other']")
    assert len(asked) == 1 and "Other symptom" in asked[0]
    assert page.locator("#f-other_symptom").is_hidden()
    assert page.input_value("#i-other_symptom") == ""

    # A field hidden while empty asks nothing.
    page.check("#f-pregnant input[value='1']")
    page.click("#f-pregnant button.clear")
    page.check("#f-sex input[value='2']")
    assert page.locator("#f-pregnant").is_hidden()
    page.click("button:has-text('Save & stay')")
    page.wait_for_selector("text=Saved Clinic visit (version 1)")
    assert page.problems == []


def test_save_and_next_form_lands_on_the_next_form(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    page = log_in(browser, live_server, "coordinator_a")
    page.goto(entry_url(live_server, subject))
    page.fill("#i-visit_date", "2025-03-01")
    page.check("#f-sex input[value='2']")
    page.click("button:has-text('Save & next form')")
    page.wait_for_url("**/follow_up/treatment/1/edit/")
    assert page.locator("h1").inner_text().startswith("Treatment line")
    assert "Saved Clinic visit (version 1)" in page.content()
    assert page.problems == []


def test_a_refused_save_puts_the_focus_on_the_reason_box_or_the_first_wrong_field(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values=VISIT,
        status=Status.COMPLETE,
    )
    page = log_in(browser, live_server, "coordinator_a")
    page.goto(entry_url(live_server, subject))
    page.fill("#i-weight", "71")
    page.click("button:has-text('Save & stay')")
    page.wait_for_selector("#reason-error")
    assert page.evaluate("document.activeElement.id") == "id_reason"

    page.fill("#i-height", "tall")
    page.fill("#id_reason", "re-measured")
    page.click("button:has-text('Save & stay')")
    page.wait_for_selector("#f-height .error")
    assert page.evaluate("document.activeElement.id") == "i-height"
    assert FormRecord.objects.get().version == 1
    assert page.problems == []


def test_a_phone_screen_needs_no_sideways_scrolling_on_the_entry_page_and_the_dashboard(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    page = log_in(browser, live_server, "coordinator_a")
    page.set_viewport_size({"width": 390, "height": 844})
    wide = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    page.goto(entry_url(live_server, subject))
    assert page.evaluate(wide) == 0, "the entry page scrolls sideways at 390 px"
    assert page.locator("button:has-text('Log out')").is_visible()
    logout = page.locator("button:has-text('Log out')").bounding_box()
    assert logout["x"] + logout["width"] <= 390
    box = page.locator("#f-sex input[value='1']").bounding_box()
    assert box["width"] >= 20 and box["height"] >= 20, f"radios are {box['width']} px"
    # The first tab stop skips the header to the first field.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "i-visit_date"

    page.goto(live_server.url + reverse("web:dashboard", args=["ecrf"]))
    assert page.evaluate(wide) == 0, "the dashboard scrolls sideways at 390 px"
    page.goto(live_server.url + reverse("web:subject", args=["ecrf", subject.subject_id]))
    assert page.evaluate(wide) == 0, "the subject page scrolls sideways at 390 px"
    assert page.problems == []
