"""Helpers for the interop tests: the shared third-party files and our own fixtures."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, SHARED
from tests.requirements import need_shared

DATA = SHARED / "data"
REDCAP = DATA / "redcap"
OWN = ROOT / "fixtures" / "interop"


def shared(path: Path) -> Path:
    """`path` under ../shared; the test skips locally and fails in CI when it is absent."""
    return need_shared(path)


def redcap_dictionaries() -> list[str]:
    if not REDCAP.exists():
        return []
    names = sorted(
        p.name for p in REDCAP.glob("*.csv") if "ictionary" in p.name or p.name.endswith("metadata_api.csv")
    )
    return names


def longitudinal_files() -> dict[str, bytes]:
    return {
        "arms": shared(REDCAP / "redcapr_longitudinal_arm.csv").read_bytes(),
        "events": shared(REDCAP / "redcapr_longitudinal_event.csv").read_bytes(),
        "mapping": (OWN / "redcap" / "longitudinal_mapping.csv").read_bytes(),
    }


def dictionary_kwargs(name: str) -> dict:
    return longitudinal_files() if "longitudinal" in name else {}
