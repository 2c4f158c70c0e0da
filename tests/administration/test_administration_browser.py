"""A study administrator sets a study up in a real Chromium, without Django admin: a member with a
site, a new site, a subject moved, and the audit log filtered and downloaded as CSV; and a new study
set up end to end (sites, members, rights, settings and status), each change in the audit log."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.interop.conftest import REDCAP, shared
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

pytestmark = pytest.mark.browser


def test_admin_adds_a_member_opens_a_site_moves_a_subject_and_downloads_the_audit_csv(
    live_server,
    personas,
    subjects,
    study,
    make_user,
    browser,  # noqa: F811 - the imported fixture; keep it last (see tests/web/test_browser.py)
):
    make_user("newcomer")
    page = browser.new_page()
    page.goto(live_server.url + reverse("web:study_list"))
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("text=Trial")
    page.click("text=Members and sites")

    page.fill("#id_username", "newcomer")
    page.select_option("#id_role", "coordinator")
    page.get_by_label("B — Site B").check()
    page.click("button:has-text('Add member')")
    row = page.locator("#members tr", has_text="newcomer")
    assert row.locator("td").nth(1).inner_text() == "Study coordinator"
    assert row.locator("td").nth(2).inner_text() == "B"

    page.click("nav.actions >> text=Sites")
    page.fill("#id_code", "C")
    page.fill("#id_name", "Site C")
    page.click("button:has-text('Open site')")
    expect(page.locator("#sites tr", has_text="Site C")).to_have_count(1)

    page.goto(live_server.url + reverse("web:subject", args=[study.slug, "A-0001"]))
    page.click("text=Move to another site")
    page.select_option("#id_site", label="B — Site B")
    page.fill("#id_reason", "moved to Bristol")
    page.click("button:has-text('Move subject')")
    page.wait_for_url("**/subjects/A-0001/")
    assert "B — Site B" in page.locator("dl.facts").inner_text()

    page.goto(live_server.url + reverse("web:dashboard", args=[study.slug]))
    page.click("text=Audit log")
    page.fill("input[name=action]", "subject.move")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_url("**action=subject.move**")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    assert "moved to Bristol" in rows.first.inner_text() and "A-0001" in rows.first.inner_text()
    with page.expect_download() as download:
        page.click("#csv")
    lines = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    assert [row[3] for row in lines[1:]] == ["subject.move"]
    assert lines[1][6:] == ["A-0001", '{"site": "A"}', '{"site": "B"}', "moved to Bristol"]
    page.click("#verify")
    assert "The chain is intact" in page.locator("#verified").inner_text()


def test_a_new_study_is_set_up_end_to_end_and_every_change_is_in_the_audit_log(
    live_server,
    make_user,
    db,
    browser,  # noqa: F811 - the imported fixture; keep it last (see tests/web/test_browser.py)
):
    """Issue 15's done-when: a staff member creates a study from a REDCap dictionary on the web and,
    as its administrator, opens its sites, adds members with rights, sets its subject ids, missing
    codes and status; the audit log page shows each change with who, when and what."""
    dictionary = shared(REDCAP / "redcapr_simple_dictionary.csv")
    make_user("founder", is_staff=True)
    make_user("carla")
    make_user("pete")
    page = browser.new_page()
    page.goto(live_server.url + reverse("web:study_list"))
    page.fill("#id_username", "founder")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.click("text=New study from a REDCap dictionary")
    page.set_input_files("#id_file", str(dictionary))
    page.fill("#id_slug", "newstudy")
    page.fill("#id_name", "New Study")
    page.click("button:has-text('Preview')")
    page.click("button:has-text('Create the study')")
    page.wait_for_url("**/studies/newstudy/sites/")  # its administrator now: sites come first

    for code, name in (("N1", "North"), ("S1", "South")):
        page.fill("#id_code", code)
        page.fill("#id_name", name)
        page.click("button:has-text('Open site')")
    expect(page.locator("#sites tbody tr")).to_have_count(2)

    page.click("nav.actions >> text=Members and rights")
    page.fill("#id_username", "carla")
    page.select_option("#id_role", "coordinator")
    page.get_by_label("N1 — North").check()
    page.get_by_label("API may import records").uncheck()
    page.fill("#id_api_expires", "2030-06-30")
    page.click("button:has-text('Add member')")
    page.fill("#id_username", "pete")
    page.select_option("#id_role", "pi")
    page.click("button:has-text('Add member')")
    assert page.locator("#members tr", has_text="carla").locator("td").nth(2).inner_text() == "N1"

    page.click("nav.actions >> text=Settings")
    page.get_by_label("Generated by the pattern").check()
    page.fill("#id_subject_id_pattern", "NS-{site}-{seq:03d}")
    page.click("#save-ids")
    page.fill("#id_codes", "NA = Not applicable\nREF = Refused")
    page.click("button:has-text('Save codes')")
    page.get_by_label("Production").check()
    page.click("#save-status")
    assert page.locator("#current-status").inner_text() == "Production"
    page.get_by_label("Closed").check()
    page.fill("#id_reason", "pilot finished")
    page.click("#save-status")
    assert "it is read-only everywhere" in page.locator("#closed-note").inner_text()

    page.click("nav.actions >> text=Audit log")
    page.wait_for_url("**/audit/")
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_be_visible()
    seen: dict[str, list[list[str]]] = {}
    for n in range(rows.count()):
        cells = [c.inner_text().strip() for c in rows.nth(n).locator("td").all()]
        seen.setdefault(cells[3], []).append(cells)
    for action in (
        "study.create",
        "site.create",
        "membership.grant",
        "membership.api_rights",
        "study.subject_ids",
        "study.missing_codes",
        "study.status",
    ):
        for _, when, who, *_ in seen[action]:
            assert who == "founder", f"{action} by {who}"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", when), f"{action} at {when!r}"
    assert sorted(row[4] for row in seen["site.create"]) == ["N1 — North", "S1 — South"]
    assert sorted(row[4] for row in seen["membership.grant"]) == [
        "carla as Study coordinator",
        "founder as Study administrator",
        "pete as Principal investigator",
    ]
    assert "api_import: true → false" in seen["membership.api_rights"][0][5]
    assert "api_expires: ∅ → 2030-06-30" in seen["membership.api_rights"][0][5]
    assert "subject_id_pattern: {site}-{seq:04d} → NS-{site}-{seq:03d}" in seen["study.subject_ids"][0][5]
    closing, production = seen["study.status"]  # newest first
    assert (closing[5], closing[6]) == ("status: production → closed", "pilot finished")
    assert production[5] == "status: development → production"
