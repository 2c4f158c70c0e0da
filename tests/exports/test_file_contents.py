"""An export with file contents (ExportSpec.include_files): only when asked, only identified, only
for a role that may download files; each content in files/<subject>/<event>/<form>/<instance>/
<field>/<name>, equal to the stored bytes, named by the cell and listed in the manifest."""

# ruff: noqa: F811  (the fixtures of tests/files/conftest.py, imported, are the test arguments)
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from guardian.shortcuts import remove_perm

from capture.audit.models import AuditEvent
from capture.exports.services import export_dataset
from capture.exports.spec import ExportSpec
from capture.files import services as files
from tests.files.conftest import file_storage, files_study, files_subjects, place, upload  # noqa: F401

pytestmark = pytest.mark.django_db

CONTENT = b"%PDF-1.4 scanned consent of A-0001\n" + bytes(range(256)) * 10
PATH = "files/A-0001/baseline/documents/1/scan/consent.pdf"
IDENTIFIED = {"identified": True, "reason": "source document verification"}


@pytest.fixture
def with_file(files_subjects, personas):
    return files.attach(
        actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("consent.pdf", CONTENT)
    )


def export(tmp_path, user, study, **options):
    return export_dataset(actor=user, study=study, spec=ExportSpec(**options), output_dir=tmp_path / "out")


def scan_cell(bundle) -> str:
    frame = pd.read_csv(bundle.open("dataset.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    row = frame[frame["subject_id"] == "A-0001"].iloc[0]
    return row[next(c for c in frame.columns if c.startswith("scan"))]


def test_asked_by_a_role_that_may_download_the_contents_are_in_the_zip_and_the_cell_names_them(
    tmp_path,
    personas,
    files_study,
    with_file,
):
    result = export(tmp_path, personas["admin"], files_study, include_files=True, **IDENTIFIED)
    with zipfile.ZipFile(result.path) as bundle:
        assert bundle.read(PATH) == CONTENT
        assert scan_cell(bundle) == PATH
        manifest = json.loads(bundle.read("manifest.json"))
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert listed[PATH] == {
        "name": PATH,
        "bytes": len(CONTENT),
        "sha256": hashlib.sha256(CONTENT).hexdigest(),
    }
    assert manifest["filters"]["include_files"] is True


def test_the_export_audit_entry_records_include_files_and_the_contents(
    tmp_path,
    personas,
    files_study,
    with_file,
):
    export(tmp_path, personas["admin"], files_study, include_files=True, **IDENTIFIED)
    entry = AuditEvent.objects.filter(action="export.create").latest("pk")
    assert entry.after["spec"]["include_files"] is True
    assert PATH in [f["name"] for f in entry.after["files"]]


def test_not_asked_no_contents_and_the_cell_gives_the_name(
    tmp_path,
    personas,
    files_study,
    with_file,
):
    result = export(tmp_path, personas["admin"], files_study, **IDENTIFIED)
    with zipfile.ZipFile(result.path) as bundle:
        assert not [n for n in bundle.namelist() if n.startswith("files/")]
        assert scan_cell(bundle) == "consent.pdf"
        assert CONTENT not in b"".join(bundle.read(n) for n in bundle.namelist())


def test_a_deidentified_export_with_file_contents_is_refused_saying_why(
    tmp_path,
    personas,
    files_study,
    with_file,
):
    with pytest.raises(ValidationError, match="cannot be de-identified"):
        export(tmp_path, personas["admin"], files_study, include_files=True)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_role_that_may_not_download_files_is_refused_file_contents(
    tmp_path,
    personas,
    files_study,
    with_file,
):
    admin = personas["admin"]
    remove_perm("view_identifiers", admin, files_study)  # may export identified, may not download
    with pytest.raises(PermissionDenied, match="File contents are not exported for your role"):
        export(tmp_path, admin, files_study, include_files=True, **IDENTIFIED)


def test_the_api_refuses_file_contents_in_a_deidentified_export(client, personas, files_study, with_file):
    client.force_login(personas["admin"])
    response = client.post(
        f"/api/v1/studies/{files_study.slug}/exports/",
        {"include_files": True},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "cannot be de-identified" in response.json()["detail"]


def test_the_api_accepts_file_contents_in_an_identified_export(client, personas, files_study, with_file):
    client.force_login(personas["admin"])
    response = client.post(
        f"/api/v1/studies/{files_study.slug}/exports/",
        {"include_files": True, **IDENTIFIED},
        content_type="application/json",
    )
    assert response.status_code == 202
    request = AuditEvent.objects.filter(action="export.request").latest("pk")
    assert request.after["spec"]["include_files"] is True


def test_the_builder_offers_file_contents_only_with_identified_exports(client, personas, files_study):
    client.force_login(personas["admin"])
    page = client.get(f"/studies/{files_study.slug}/exports/").content.decode()
    assert "Include file contents" in page and "cannot be de-identified" in page
    client.force_login(personas["statistician"])
    page = client.get(f"/studies/{files_study.slug}/exports/").content.decode()
    assert "Include file contents" not in page


def test_export_dataset_include_files_writes_the_contents_and_reproduces_the_option(
    tmp_path, personas, files_study, with_file
):
    out = io.StringIO()
    call_command(
        "export_dataset",
        "--study", files_study.slug,
        "--user", personas["admin"].username,
        "--identified", "--reason", "source document verification",
        "--include-files",
        "--output", str(tmp_path / "out"),
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    with zipfile.ZipFile(out.getvalue().splitlines()[0]) as bundle:
        assert bundle.read(PATH) == CONTENT
        assert "--include-files" in json.loads(bundle.read("manifest.json"))["reproduce"]


def test_export_dataset_refuses_include_files_without_identified(tmp_path, personas, files_study, with_file):
    with pytest.raises(CommandError, match="cannot be de-identified"):
        call_command(
            "export_dataset",
            "--study", files_study.slug,
            "--user", personas["admin"].username,
            "--include-files",
            "--output", str(tmp_path / "out"),
        )  # fmt: skip
