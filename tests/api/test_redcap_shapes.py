"""Capture's REDCap answers have the shapes of real REDCap files (../shared/data/redcap/)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import SHARED
from tests.requirements import need_shared

REDCAP = SHARED / "data" / "redcap"


@pytest.fixture(autouse=True)
def _shared_redcap_files():
    need_shared(REDCAP)


URL = "/redcap/api/"


def _header(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


@pytest.mark.redcap("metadata", "export")
def test_metadata_csv_has_redcaps_api_columns(client, redcap_tokens):
    text = client.post(URL, {"token": redcap_tokens["admin"], "content": "metadata", "format": "csv"}).content
    ours = next(csv.reader(io.StringIO(text.decode())))
    assert ours == _header(REDCAP / "redcapr_simple_metadata_api.csv")


@pytest.mark.redcap("record", "export")
def test_classic_repeating_export_has_redcaps_column_layout(client, personas, classic_study):
    from capture.api.tokens import create_redcap_token

    _, token = create_redcap_token(user=personas["admin"], study=classic_study)
    text = client.post(URL, {"token": token, "content": "record", "format": "csv"}).content.decode()
    ours = next(csv.reader(io.StringIO(text)))
    theirs = _header(REDCAP / "redcapr_repeating_data.csv")
    # record id, the two repeat columns, then each instrument's fields closed by <form>_complete.
    assert ours[1:3] == theirs[1:3] == ["redcap_repeat_instrument", "redcap_repeat_instance"]
    assert theirs[-1].endswith("_complete") and ours[-1] == "lesions_complete"
    assert ours.index("demographics_complete") < ours.index("visit_date")


@pytest.mark.redcap("record", "export")
def test_checkbox_columns_are_named_like_redcaps(client, redcap_tokens, records):
    theirs = _header(REDCAP / "redcapr_checkboxes_data.csv")
    assert any("___" in name for name in theirs)
    text = client.post(URL, {"token": redcap_tokens["admin"], "content": "record", "format": "csv"}).content
    ours = next(csv.reader(io.StringIO(text.decode())))
    assert [c for c in ours if "___" in c] == ["symptoms___pain", "symptoms___fatigue", "symptoms___nausea"]
