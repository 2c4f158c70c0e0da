"""A page that cannot save shows the calculations the server stored, and the browser does not
recompute them (issue 16, entry page item 6): a read-only role, a locked form and a de-identified
role all see what the record holds, which is what an export gives."""

import re

import pytest

from capture.records.services import save_record, set_record_lock
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name
from tests.web.test_ecrf_browser import entry_url, log_in
from tests.web.test_entry_pages import url


def _weights(personas, subject):
    """Treatment's weight change reads the baseline weight; the baseline then changes, so the
    stored change (75 - 70 = 5) differs from one recomputed now (75 - 72 = 3)."""
    actor = personas["coordinator_a"]
    save_record(
        actor=actor, subject=subject, event_name="baseline", form_name="visit", values={"weight": "70"}
    )
    treatment = save_record(
        actor=actor,
        subject=subject,
        event_name="follow_up",
        form_name="treatment",
        values={"agent": "cisplatin", "weight": "75"},
    )
    assert treatment.data["weight_change"] == 5
    save_record(
        actor=actor,
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values={"weight": "72"},
        expected_version=1,
    )
    return treatment


def shown(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_read_only_and_locked_pages_show_the_stored_calculation(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    treatment = _weights(personas, subject)
    page_url = url("entry", subject, event="follow_up", form="treatment")
    client.force_login(personas["pi"])  # reads, never saves
    html = client.get(page_url).content.decode()
    assert shown(html, "weight_change") == "5" and "data-server-logic" in html
    client.force_login(personas["coordinator_a"])  # may save: sees what a save would store
    html = client.get(page_url).content.decode()
    assert shown(html, "weight_change") == "3" and "data-server-logic" not in html
    set_record_lock(actor=personas["data_manager"], record=treatment, locked=True, reason="cleaned")
    html = client.get(page_url).content.decode()
    assert shown(html, "weight_change") == "5" and "data-server-logic" in html


@pytest.mark.browser
def test_read_only_roles_see_the_servers_calculations_in_chromium(
    live_server,
    personas,
    ecrf_subjects,
    browser,  # noqa: F811
):
    subject = ecrf_subjects["a"]
    _weights(personas, subject)
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values={"weight": "72", "visit_date": "2025-03-01", "dob": "1970-05-01"},
        expected_version=2,
    )
    for who in ("pi", "monitor"):
        page = log_in(browser, live_server, who)
        page.goto(entry_url(live_server, subject, event="follow_up", form="treatment"))
        page.wait_for_load_state("load")
        assert page.input_value("#i-weight_change") == "5", who
        page.goto(entry_url(live_server, subject))
        page.wait_for_load_state("load")
        assert page.input_value("#i-age") == "54", who  # the monitor's page hides the date of birth
        assert page.problems == []
