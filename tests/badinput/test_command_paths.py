"""Every management command that reads or writes a file says clearly when the path is not usable
(a CommandError that names it), instead of printing a traceback: an input file that is not there,
an output folder that cannot be made (here: its parent is a file)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

# {missing}: a path that does not exist; {blocked}: a folder path below a regular file;
# {study}: the test study's slug; {user}: a user who may act in it.
CASES = [
    ("import_spreadsheet", ["{missing}", "--study", "{study}", "--user", "{user}"]),
    ("import_spreadsheet", ["{missing}", "--study", "{study}", "--user", "{user}", "--redcap"]),
    (
        "import_spreadsheet",
        ["{csv}", "--study", "{study}", "--user", "{user}", "--mapping-file", "{missing}"],
    ),
    (
        "import_spreadsheet",
        ["{csv}", "--study", "{study}", "--user", "{user}", "--report", "{blocked}/r.xlsx"],
    ),
    ("import_cadsr", ["{missing}"]),
    ("import_odm", ["{missing}", "--check"]),
    ("import_redcap_dictionary", ["{missing}", "--study", "new", "--check"]),
    ("import_redcap_dictionary", ["{csv}", "--study", "new", "--check", "--arms", "{missing}"]),
    ("load_definitions", ["{missing}"]),
    ("check_deid", ["{missing}"]),
    ("deidentify_dicom", ["{missing}", "{blocked}", "--study", "{study}"]),
    ("ingest_dicom", ["{missing}", "--study", "{study}"]),
    ("export_odm", ["{study}", "--out", "{blocked}/odm.xml"]),
    ("export_redcap_dictionary", ["{study}", "--out", "{blocked}"]),
    ("export_dataset", ["--study", "{study}", "--user", "{user}", "--output", "{blocked}"]),
]


@pytest.mark.parametrize(("command", "arguments"), CASES, ids=[f"{c}-{n}" for n, (c, _) in enumerate(CASES)])
def test_a_path_that_is_not_there_is_a_clear_command_error(study, personas, tmp_path, command, arguments):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "records.csv").write_text("record_id\n1\n")
    values = {
        "missing": str(tmp_path / "missing-input.csv"),
        "blocked": str(tmp_path / "a_file" / "out"),
        "csv": str(tmp_path / "records.csv"),
        "study": study.slug,
        "user": personas["admin"].username,
    }
    args = [a.format(**values) for a in arguments]
    with pytest.raises(CommandError) as refused:
        call_command(command, *args)
    named = "missing-input.csv" if "{missing}" in arguments else "a_file"
    assert named in str(refused.value), str(refused.value)
