"""A study administrator sets a study up in a real Chromium, without Django admin: a member with a
site, a new site, a subject moved, and the audit log filtered and downloaded as CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
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
    assert page.locator("#sites tr", has_text="Site C").count() == 1

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
    rows = page.locator("#audit tbody tr")
    assert rows.count() == 1
    assert "moved to Bristol" in rows.first.inner_text() and "A-0001" in rows.first.inner_text()
    with page.expect_download() as download:
        page.click("#csv")
    lines = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    assert [row[3] for row in lines[1:]] == ["subject.move"]
    assert lines[1][6:] == ["A-0001", '{"site": "A"}', '{"site": "B"}', "moved to Bristol"]
    page.click("#verify")
    assert "The chain is intact" in page.locator("#verified").inner_text()
