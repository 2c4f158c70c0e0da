"""The interop management commands: thin callers of the services, with problems on the console."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from capture.definitions.converters import odm
from capture.definitions.models import DataElement, FormDefinition
from capture.studies.models import Study

from .conftest import DATA, OWN, REDCAP, shared


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_redcap_dictionary_creates_a_longitudinal_study(db):
    output = _run(
        "import_redcap_dictionary",
        str(shared(REDCAP / "redcapr_longitudinal_dictionary.csv")),
        "--study",
        "longi",
        "--name",
        "Longitudinal",
        "--arms",
        str(REDCAP / "redcapr_longitudinal_arm.csv"),
        "--events",
        str(REDCAP / "redcapr_longitudinal_event.csv"),
        "--mapping",
        str(OWN / "redcap" / "longitudinal_mapping.csv"),
    )
    assert "Created study longi on longi@1.0" in output
    assert Study.objects.get(slug="longi").schedule.arms.count() == 2


def test_import_redcap_dictionary_check_writes_nothing_and_errors_stop_it(db, tmp_path):
    output = _run(
        "import_redcap_dictionary", str(OWN / "redcap" / "awkward_dictionary.csv"), "--study", "x", "--check"
    )
    assert "1 forms, 4 elements" in output
    assert not Study.objects.exists() and not DataElement.objects.exists()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        (OWN / "redcap" / "awkward_dictionary.csv")
        .read_bytes()
        .replace(b"date_dmy,2020-01-01", b"date_dmy,soon")
    )
    with pytest.raises(CommandError, match="nothing was loaded"):
        _run("import_redcap_dictionary", str(bad), "--study", "x")
    assert not Study.objects.exists()


def test_export_redcap_dictionary_and_export_odm_write_files(db, study, tmp_path):
    _run("export_redcap_dictionary", "trial", "--out", str(tmp_path))
    assert (tmp_path / "trial_dictionary.csv").read_text().startswith('"Variable / Field Name"') or (
        tmp_path / "trial_dictionary.csv"
    ).read_text().startswith("Variable / Field Name")
    assert (tmp_path / "trial_mapping.csv").exists()
    target = tmp_path / "trial.xml"
    assert "valid ODM 1.3.2" in _run("export_odm", "trial", "--out", str(target))
    assert odm.validate_odm(target.read_bytes()) == []


def test_export_of_an_unknown_study_says_how_to_fix(db):
    with pytest.raises(CommandError, match="Fix:"):
        _run("export_odm", "nope")


def test_import_cadsr_loads_cde_and_form_builder_files(db):
    _run(
        "import_cadsr",
        str(shared(DATA / "cadsr" / "cde-sample-2001831.xml")),
        str(OWN / "cadsr" / "formcart_recurrence.xml"),
    )
    assert DataElement.objects.get(public_id="2001831", version="3").permissible_values.count() == 19
    assert FormDefinition.objects.filter(name="cadsr_9000001").exists()


def test_import_odm_creates_a_study_from_redcap_project_xml(db):
    output = _run(
        "import_odm", str(shared(DATA / "odm" / "redcapr_longitudinal_project.odm.xml")), "--study", "fromxml"
    )
    assert "fromxml" in Study.objects.values_list("slug", flat=True)
    assert "created" in output
