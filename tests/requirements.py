"""What a test needs from outside the repository: the team's ../shared folder, Debian's Chromium,
Orthanc with its DICOMweb plugin, PostgreSQL's server programs.

`need(condition, what, how)` lets the test run when `condition` holds. Otherwise, on a developer's
machine the test is skipped (with how to install the missing thing), and under CI (CI=true, as CI
services set it) the test fails: a CI run that cannot run these tests must not pass by skipping
them. Modules that are always installed are imported, never guarded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_HOW = "put the team's shared folder (ARCHITECTURE.md, data/) next to the checkout, as ../shared"


def in_ci() -> bool:
    """CI services set CI=true; an empty, "0" or "false" value means a local run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(condition: object, what: str, how: str) -> None:
    """Go on when `condition` is true; else fail under CI, skip locally. `what` names the missing
    thing ("Debian's chromium"), `how` says how to get it ("apt-get install chromium")."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI must run this test, but {what} is missing: {how}.", pytrace=False)
    pytest.skip(f"{what} is missing; to run this test, {how}.")


def need_shared(path: Path) -> Path:
    """`path`, a file or folder under ../shared, when it is there (see `need`)."""
    need(path.exists(), f"../shared ({path})", SHARED_HOW)
    return path
