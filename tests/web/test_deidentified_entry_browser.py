"""A de-identified entry page in a real Chromium shows the calculations the server stored: the
browser does not recompute them from values the page hides (a date of birth) or shifts."""

import pytest

from capture.records.services import save_record
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name
from tests.web.test_ecrf_browser import entry_url, log_in

pytestmark = pytest.mark.browser

VISIT = {
    "visit_date": "2025-03-01",
    "sex": "1",
    "pregnant": "0",
    "dob": "1970-05-01",
    "weight": "70",
    "height": "175",
}


def test_statistician_sees_the_stored_age_not_one_recomputed_from_the_hidden_date_of_birth(
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
    )
    page = log_in(browser, live_server, "statistician")
    page.goto(entry_url(live_server, subject))
    page.wait_for_load_state("load")
    assert page.input_value("#i-dob") == ""  # the identifier is not on the page
    assert page.input_value("#i-age") == "54"  # as stored: 1970-05-01 to 2025-03-01
    assert page.input_value("#i-bmi") == "22.9"
    assert page.problems == []
