"""docs/api.md's REDCap coverage table is the rendering of the tests' recorded results
(docs/api-coverage.json), and every method a test's mark names is in those results.

Fix a failure with `python -m capture.api.redcap.coverage --run` (or without --run after
recording: `CAPTURE_REDCAP_COVERAGE=docs/api-coverage.json pytest -m redcap tests/api`)."""

from __future__ import annotations

import ast
from pathlib import Path

from capture.api.redcap import coverage

ROOT = Path(__file__).resolve().parent.parent.parent


def marked_methods() -> set[tuple[str, str]]:
    """(content, action) of every `pytest.mark.redcap("content", "action", ...)` written in the
    marked test folders (coverage.MARKED_DIRS)."""
    found = set()
    for path in (p for folder in coverage.MARKED_DIRS for p in (ROOT / folder).glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "pytest.mark.redcap"
                and len(node.args) == 2
                and all(isinstance(a, ast.Constant) for a in node.args)
            ):
                found.add((node.args[0].value, node.args[1].value))
    return found


def test_the_coverage_table_is_the_rendering_of_the_recorded_results():
    doc = coverage.DOC.read_text(encoding="utf-8")
    assert doc == coverage.rendered_doc(doc, coverage.load()), (
        "docs/api.md's coverage table is out of date: run python -m capture.api.redcap.coverage"
    )


def test_every_marked_method_has_recorded_results():
    recorded = {(r["content"], r["action"]) for r in coverage.load()}
    missing = marked_methods() - recorded
    assert not missing, (
        f"marked in tests but not in docs/api-coverage.json: {sorted(missing)}; run with --run"
    )


def test_the_table_lists_every_redcap_method_once():
    table = coverage.render(coverage.load())
    for content, action, _ in coverage.METHODS:
        assert table.count(f"| `{content}` | `{action}` |") == 1, (content, action)
    assert len(coverage.KNOWN) == len(coverage.METHODS)


def test_a_failing_test_makes_its_method_fail_and_no_test_says_so():
    def result(test, content, claim, outcome, note=""):
        return {
            "test": test,
            "content": content,
            "action": "export",
            "claim": claim,
            "note": note,
            "outcome": outcome,
        }

    results = [
        result("t1", "record", "works", "passed"),
        result("t2", "record", "works", "failed"),
        result("t3", "log", "differs", "passed", note="x"),
    ]
    assert coverage.status(results, "record", "export") == ("fails", "failing: t2", 2)
    assert coverage.status(results, "log", "export") == ("differs", "x", 1)
    assert coverage.status(results, "report", "export") == ("no test", "", 0)
