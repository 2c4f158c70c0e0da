"""A statistician builds a linked dataset in a real Chromium and downloads it."""

import zipfile

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.web.test_browser import browser  # noqa: F401 - the shared Chromium fixture

pytestmark = pytest.mark.browser


def test_a_statistician_builds_an_export_and_downloads_the_zip(
    live_server,
    personas,
    records,
    study,
    tmp_path,
    browser,  # noqa: F811 - the fixture imported above
):
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.goto(live_server.url + reverse("exports:builder", args=["trial"]))
    page.fill("#id_username", "statistician")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.check("input[name=formats][value=dta]")
    page.check("input[name=formats][value=sav]")
    page.check("input[name=layout][value=long]")
    page.click("button:has-text('Start the export')")
    page.wait_for_selector("#job-download:not([hidden])")
    with page.expect_download() as info:
        page.click("#job-download a")
    path = tmp_path / "export.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as bundle:
        assert {"dataset.csv", "dataset.dta", "dataset.sav", "codebook.csv", "manifest.json"} <= set(
            bundle.namelist()
        )
    assert problems == [], f"CSP violations or failed requests: {problems}"
