"""The recorder of REDCap API coverage: a test that drives a REDCap API method carries
`@pytest.mark.redcap(content, action)` (capture/api/redcap/coverage.py); a run with
CAPTURE_REDCAP_COVERAGE=<file> writes each marked test's outcome there. Its hooks are the top
conftest's (tests/conftest.py imports them), so marks in tests/api, tests/files and tests/reports
all count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from capture.api.redcap import coverage

_RESULTS: dict[tuple[str, str, str], dict] = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "redcap(content, action, differs='', unsupported=''): the test drives this REDCap API method "
        "(docs/api.md's coverage table is made from these)",
    )


def pytest_collection_modifyitems(items):
    for item in items:
        for mark in item.iter_markers("redcap"):
            coverage.check_method(*mark.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    marks = list(item.iter_markers("redcap"))
    if marks and (report.when == "call" or report.failed):
        for mark in marks:
            content, action = mark.args
            claim = (
                "unsupported"
                if "unsupported" in mark.kwargs
                else "differs"
                if "differs" in mark.kwargs
                else "works"
            )
            key = (item.nodeid, content, action)
            if key in _RESULTS and _RESULTS[key]["outcome"] != "passed":
                continue  # a failed setup or call stays failed
            _RESULTS[key] = {
                "test": item.nodeid.split("::")[-1],
                "content": content,
                "action": action,
                "claim": claim,
                "note": mark.kwargs.get(claim, ""),
                "outcome": report.outcome,
            }
    return report


def pytest_sessionfinish(session):
    path = os.environ.get("CAPTURE_REDCAP_COVERAGE")
    if path and _RESULTS:
        rows = sorted(_RESULTS.values(), key=lambda r: (r["content"], r["action"], r["test"]))
        Path(path).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
