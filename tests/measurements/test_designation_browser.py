"""A data manager designates target lesions in a real Chromium: a refusal that names the RECIST
rule, then a designation that is saved, and the timeline showing the response it gives."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.web.test_browser import browser  # noqa: F401 - the Chromium fixture, used by name

pytestmark = pytest.mark.browser


def test_data_manager_designates_targets_and_sees_the_response_on_the_timeline(
    live_server,
    personas,
    baseline,
    browser,  # noqa: F811 - the imported fixture; keep it last (see tests/web/test_browser.py)
):
    subject_id = baseline["subject"].subject_id
    page = browser.new_page()
    page.goto(live_server.url + reverse("web:subject", args=["trial", subject_id]))
    page.fill("#id_username", "data_manager")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("text=Lesions and target designation")
    page.get_by_label("Role of node12").select_option("target")
    page.click("#save-designation")
    assert "a lymph node is a target only with a short axis of at least 15 mm" in page.inner_text(
        "#designation-error"
    )
    for name, role in [
        ("liver1", "target"),
        ("liver2", "target"),
        ("node18", "target"),
        ("lung", "non_target"),
    ]:
        page.get_by_label(f"Role of {name}").select_option(role)
    page.get_by_label("Role of node12").select_option("undesignated")
    page.click("#save-designation")
    assert "Designation saved (4 lesion(s) changed)" in page.content()
    page.click("text=Timeline and responses")
    # Targets 30 + 25 + 18 = 73 at baseline; 15 + 10 + 9 = 34 at week 8: -53.4 %, a partial response.
    row = page.locator("#responses tr", has_text="Week 8")
    assert "PR" in row.inner_text() and "34.0" in row.inner_text() and "-53.4" in row.inner_text()
    assert "Best overall response" in page.content()
