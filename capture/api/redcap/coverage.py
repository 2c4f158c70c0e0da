"""The REDCap API coverage table of docs/api.md, made from the tests' results.

A test that drives a REDCap API method carries `@pytest.mark.redcap(content, action)` — with
`differs="how"` when Capture answers otherwise than REDCap, or `unsupported="why"` when the test
shows the method refused. A run with CAPTURE_REDCAP_COVERAGE=<file> (tests/api/conftest.py) writes
each marked test's method, claim and outcome to that JSON file; this module turns the file into the
table. A method is "works" only when a passing test says so; a failing test makes it "fails"; a
method no test drives says "no test" (or why it is not offered).

    python -m capture.api.redcap.coverage          # render docs/api-coverage.json into docs/api.md
    python -m capture.api.redcap.coverage --run    # run the marked tests first, then render

tests/api/test_api_coverage.py fails when docs/api.md is not the rendering of the JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "docs" / "api-coverage.json"
DOC = ROOT / "docs" / "api.md"
START = "<!-- redcap-coverage:start (python -m capture.api.redcap.coverage; do not edit by hand) -->"
END = "<!-- redcap-coverage:end -->"

# Every method of REDCap's API (14.x, the API playground's list): (content, action, what it does).
METHODS: list[tuple[str, str, str]] = [
    ("arm", "export", "Export arms"),
    ("arm", "import", "Import arms"),
    ("arm", "delete", "Delete arms"),
    ("dag", "export", "Export DAGs"),
    ("dag", "import", "Import DAGs"),
    ("dag", "delete", "Delete DAGs"),
    ("dag", "switch", "Switch DAG"),
    ("userDagMapping", "export", "Export user-DAG assignments"),
    ("userDagMapping", "import", "Import user-DAG assignments"),
    ("event", "export", "Export events"),
    ("event", "import", "Import events"),
    ("event", "delete", "Delete events"),
    ("exportFieldNames", "export", "Export list of export field names"),
    ("file", "export", "Export a file"),
    ("file", "import", "Import a file"),
    ("file", "delete", "Delete a file"),
    ("fileRepository", "createFolder", "Create a folder in the file repository"),
    ("fileRepository", "list", "List the file repository"),
    ("fileRepository", "export", "Export a file from the file repository"),
    ("fileRepository", "import", "Import a file into the file repository"),
    ("fileRepository", "delete", "Delete a file from the file repository"),
    ("instrument", "export", "Export instruments"),
    ("pdf", "export", "Export PDF of instruments"),
    ("formEventMapping", "export", "Export instrument-event mappings"),
    ("formEventMapping", "import", "Import instrument-event mappings"),
    ("log", "export", "Export logging"),
    ("metadata", "export", "Export metadata (data dictionary)"),
    ("metadata", "import", "Import metadata (data dictionary)"),
    ("project", "create", "Create a project (super token)"),
    ("project", "export", "Export project information"),
    ("project_settings", "import", "Import project information"),
    ("project_xml", "export", "Export the project XML"),
    ("record", "export", "Export records"),
    ("record", "import", "Import records"),
    ("record", "delete", "Delete records"),
    ("record", "rename", "Rename a record"),
    ("generateNextRecordName", "export", "Generate the next record name"),
    ("repeatingFormsEvents", "export", "Export repeating instruments and events"),
    ("repeatingFormsEvents", "import", "Import repeating instruments and events"),
    ("report", "export", "Export reports"),
    ("version", "export", "Export the REDCap version"),
    ("surveyLink", "export", "Export a survey link"),
    ("participantList", "export", "Export a survey participant list"),
    ("surveyQueueLink", "export", "Export a survey queue link"),
    ("surveyReturnCode", "export", "Export a survey return code"),
    ("surveyAccessCode", "export", "Export a survey access code"),
    ("user", "export", "Export users"),
    ("user", "import", "Import users"),
    ("user", "delete", "Delete users"),
    ("userRole", "export", "Export user roles"),
    ("userRole", "import", "Import user roles"),
    ("userRole", "delete", "Delete user roles"),
    ("userRoleMapping", "export", "Export user-role assignments"),
    ("userRoleMapping", "import", "Import user-role assignments"),
]
KNOWN = {(content, action) for content, action, _ in METHODS}


def check_method(content: str, action: str) -> None:
    """Raise ValueError for a method REDCap does not have (a typo in a test's marker)."""
    if (content, action) not in KNOWN:
        raise ValueError(
            f"redcap({content!r}, {action!r}) names no REDCap API method; use one of METHODS in {__name__}."
        )


def status(results: list[dict], content: str, action: str) -> tuple[str, str, int]:
    """(status, how, number of tests) of one method from the recorded results."""
    mine = [r for r in results if (r["content"], r["action"]) == (content, action)]
    if not mine:
        return "no test", "", 0
    notes = sorted({r["note"] for r in mine if r["note"]})
    if any(r["outcome"] != "passed" for r in mine):
        failing = sorted(r["test"] for r in mine if r["outcome"] != "passed")
        return "fails", "failing: " + ", ".join(failing), len(mine)
    claims = {r["claim"] for r in mine}
    if "unsupported" in claims:
        return "not supported", "; ".join(notes), len(mine)
    if "differs" in claims:
        return "differs", "; ".join(notes), len(mine)
    return "works", "; ".join(notes), len(mine)


def render(results: list[dict]) -> str:
    """The Markdown table, one row per REDCap API method, between the START and END markers."""
    lines = [
        START,
        "| `content` | `action` | REDCap method | status | how Capture differs, or why not | tests |",
        "|---|---|---|---|---|---|",
    ]
    for content, action, title in METHODS:
        state, how, count = status(results, content, action)
        how = how.replace("|", "\\|")
        lines.append(f"| `{content}` | `{action}` | {title} | {state} | {how} | {count} |")
    lines.append(END)
    return "\n".join(lines)


def load(path: Path = RESULTS) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def rendered_doc(doc: str, results: list[dict]) -> str:
    """`doc` with its coverage block replaced by the rendering of `results`."""
    if START not in doc or END not in doc:
        raise ValueError(f"{DOC} lacks the coverage markers; put {START!r} and {END!r} where the table goes.")
    before, rest = doc.split(START, 1)
    after = rest.split(END, 1)[1]
    return before + render(results) + after


# The test folders whose tests carry `@pytest.mark.redcap` (tests/api/test_api_coverage.py reads them).
MARKED_DIRS = ("tests/api", "tests/files", "tests/reports")


def run_tests() -> int:
    """Run every test marked `redcap` with the recorder on; its results replace RESULTS."""
    env = {**os.environ, "CAPTURE_REDCAP_COVERAGE": str(RESULTS)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "redcap", *MARKED_DIRS]
    return subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and arguments


def main(argv: list[str]) -> int:
    if "--run" in argv:
        run_tests()  # a failing test is recorded as "fails" in the table, not hidden
    DOC.write_text(rendered_doc(DOC.read_text(encoding="utf-8"), load()), encoding="utf-8")
    print(f"{DOC}: the coverage table from {RESULTS}")  # noqa: T201 - a command's report
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
