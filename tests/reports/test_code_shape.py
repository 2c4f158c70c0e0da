"""Reports are made by the REDCap record export (capture/reports/rows.py): they call its public
functions, never its private ones, so a change inside the export cannot break reports unseen."""

from __future__ import annotations

from tests.code_shape import private_uses


def test_reports_use_only_public_names_of_other_modules():
    used = private_uses("capture.reports")
    assert used == [], (
        f"capture/reports uses private names of other modules: {used}. Give what both modules need a "
        "public name (no leading underscore) in the module that owns it."
    )


def test_the_check_finds_private_names_of_another_package_and_allows_its_own(tmp_path, monkeypatch):
    package = tmp_path / "shape_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def _own():\n    return 1\n")
    (package / "uses.py").write_text(
        "from capture.api.redcap import records as export\n"
        "from capture.studies.services import _locked_study\n"
        "from . import helpers\n\n"
        "def run():\n"
        "    return export._Hidden, export.SPECIAL, helpers._own(), _locked_study\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert private_uses("shape_probe") == [
        "shape_probe.uses:2 capture.studies.services._locked_study",
        "shape_probe.uses:6 export._Hidden",
    ]
