"""The demo sits above the apps it seeds: they never import it, and studies does not reach up into
records or imaging to seed them (the cycles studies ↔ records and studies ↔ imaging)."""

from __future__ import annotations

import ast
from pathlib import Path

CAPTURE = Path(__file__).resolve().parents[2] / "capture"


def imports_of(package: str) -> dict[str, set[str]]:
    """Module path -> the absolute names it imports (relative imports resolved), at any depth."""
    found: dict[str, set[str]] = {}
    for path in sorted((CAPTURE / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        here = ["capture", *path.relative_to(CAPTURE).with_suffix("").parts]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                names |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
        found[str(path.relative_to(CAPTURE.parent))] = names
    return found


def test_no_app_imports_the_demo():
    apps = [p.name for p in CAPTURE.iterdir() if (p / "apps.py").exists() and p.name != "demo"]
    assert "studies" in apps and "imaging" in apps
    offenders = {
        module: sorted(n for n in names if n == "capture.demo" or n.startswith("capture.demo."))
        for app in apps
        for module, names in imports_of(app).items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_studies_imports_neither_records_nor_imaging():
    upward = ("capture.records", "capture.imaging")
    offenders = {
        module: sorted(n for n in names if n.startswith(upward))
        for module, names in imports_of("studies").items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_the_demo_app_owns_the_seed_command():
    from django.core.management import get_commands

    assert get_commands()["seed_demo"] == "capture.demo"
