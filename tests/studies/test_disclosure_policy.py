"""The disclosure policy's own rules, with expectations worked out by hand."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from capture.studies.disclosure import MASK, Disclosure, shift_text

SUBJECT = SimpleNamespace(date_shift_days=-40, enrollment_date=dt.date(2025, 3, 1))
DEID = Disclosure(study_id=1, identified=False)
IDENTIFIED = Disclosure(study_id=1, identified=True)


def test_dates_move_by_the_subject_shift_in_the_deidentified_world_only():
    assert DEID.date(SUBJECT, dt.date(2025, 3, 1)) == dt.date(2025, 1, 20)
    assert DEID.date(SUBJECT, "2025-03-01") == "2025-01-20"
    assert DEID.date(SUBJECT, "2025-03-01 08:30") == "2025-01-20 08:30"
    assert DEID.enrollment_date(SUBJECT) == dt.date(2025, 1, 20)
    assert IDENTIFIED.date(SUBJECT, "2025-03-01") == "2025-03-01"


def test_a_missing_data_code_in_a_date_is_not_a_date():
    assert shift_text("UNK", -40) == "UNK"
    assert DEID.date(SUBJECT, "") == ""


def test_subject_timestamps_shift_and_subjectless_ones_are_withheld():
    when = dt.datetime(2025, 3, 1, 9, 15, tzinfo=dt.UTC)
    assert DEID.timestamp(SUBJECT, when) == dt.datetime(2025, 1, 20, 9, 15, tzinfo=dt.UTC)
    assert DEID.timestamp(None, when) is None
    assert IDENTIFIED.timestamp(None, when) == when


def test_identifier_values_are_masked_on_pages_and_absent_from_data():
    assert DEID.value(SUBJECT, datatype="text", identifier=True, value="MRN-1") == MASK
    assert IDENTIFIED.value(SUBJECT, datatype="text", identifier=True, value="MRN-1") == "MRN-1"
    fields = {
        "mrn": SimpleNamespace(datatype="text", identifier=True),
        "visit": SimpleNamespace(datatype="date", identifier=False),
        "rows": SimpleNamespace(datatype="text", identifier=False),
        "row_date": SimpleNamespace(datatype="date", identifier=False),
        "row_phone": SimpleNamespace(datatype="text", identifier=True),
    }
    data = {
        "mrn": "MRN-1",
        "visit": "2025-03-01",
        "unknown_key": "x",
        "rows": [{"row_date": "2025-03-02", "row_phone": "555"}],
    }
    assert DEID.record_data(SUBJECT, fields, data) == {
        "visit": "2025-01-20",
        "rows": [{"row_date": "2025-01-21"}],
    }
    assert IDENTIFIED.record_data(SUBJECT, fields, data) is data


def test_dicom_free_text_is_withheld_from_the_deidentified_world():
    assert DEID.dicom_text("CT chest for DOE JANE") == ""
    assert IDENTIFIED.dicom_text("CT chest for DOE JANE") == "CT chest for DOE JANE"
