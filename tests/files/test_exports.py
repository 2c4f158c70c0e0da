"""A dataset export of a file field: never the content; the file's name only in an identified
export (a role that may, with a reason), "[document]" in a de-identified one."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from capture.exports.services import export_dataset
from capture.exports.spec import ExportSpec
from capture.files import services as files
from tests.files.conftest import PNG, place, upload

pytestmark = pytest.mark.django_db


def export(tmp_path, user, study, **options):
    result = export_dataset(actor=user, study=study, spec=ExportSpec(**options), output_dir=tmp_path / "out")
    with zipfile.ZipFile(result.path) as bundle:
        names = bundle.namelist()
        frame = pd.read_csv(
            bundle.open("dataset.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
        everything = b"".join(bundle.read(n) for n in names)
        codebook = bundle.read("codebook.csv").decode("utf-8-sig")
    return frame, everything, codebook


@pytest.fixture
def with_file(files_subjects, personas):
    return files.attach(
        actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("Smith_J_scan.png")
    )


def _scan_column(frame) -> str:
    return next(c for c in frame.columns if c.startswith("scan"))


def test_a_deidentified_export_says_there_is_a_file_and_gives_neither_name_nor_content(
    tmp_path, personas, files_study, with_file
):
    frame, everything, codebook = export(tmp_path, personas["statistician"], files_study)
    row = frame[frame["subject_id"] == "A-0001"].iloc[0]
    assert row[_scan_column(frame)] == "[document]"
    assert b"Smith_J" not in everything and PNG not in everything
    assert with_file.id.hex.encode() not in everything
    assert "names and contents are not exported" in codebook


def test_an_identified_export_gives_the_file_name_but_not_the_content(
    tmp_path, personas, files_study, with_file
):
    frame, everything, codebook = export(
        tmp_path, personas["admin"], files_study, identified=True, reason="source document check"
    )
    row = frame[frame["subject_id"] == "A-0001"].iloc[0]
    assert row[_scan_column(frame)] == "Smith_J_scan.png"
    assert PNG not in everything
    assert "file contents are not exported" in codebook
