"""Cell cleaning: dates by declared format, Excel serials, value maps, missing codes; suggestions."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from capture.imports.mapping import (
    CellError,
    ColumnSpec,
    ItemColumn,
    Mapping,
    number_text,
    parse_date,
    parse_value_map,
    suggest_columns,
)


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("31/10/98", "DMY", "1998-10-31"),
        ("2/10/01", "DMY", "2001-10-02"),
        ("2/10/01", "MDY", "2001-02-10"),
        ("8/17/2004", "MDY", "2004-08-17"),
        ("31.10.1998", "DMY", "1998-10-31"),
        ("1998-10-31", "DMY", "1998-10-31"),  # ISO is never misread, whatever the declared format
        ("31/10/98", "auto", "1998-10-31"),  # day > 12: cannot be a month
        ("10/31/98", "auto", "1998-10-31"),
        (45000.0, "DMY", "2023-03-15"),  # an Excel serial date in a cell formatted as a number
        (dt.date(2020, 1, 2), "MDY", "2020-01-02"),
        (
            dt.datetime(2020, 1, 2, 13, 5, tzinfo=dt.UTC),
            "DMY",
            "2020-01-02",
        ),  # as calamine gives a date-time cell
        ("5/1/25", "DMY", "2025-01-05"),  # yy ≤ pivot (25) → 20yy
        ("5/1/26", "DMY", "1926-01-05"),
    ],
)
def test_dates_follow_the_declared_format(raw, fmt, expected):
    assert parse_date(raw, fmt, pivot=25) == expected


def test_an_ambiguous_date_is_an_error_never_a_guess():
    with pytest.raises(CellError, match="ambiguous.*Declare the column's date format"):
        parse_date("2/10/01", "auto", pivot=25)


@pytest.mark.parametrize(
    ("raw", "fmt", "reason"),
    [
        ("31/10/98", "MDY", "not a valid M/D/Y date"),
        ("soon", "DMY", "not a date in the declared format"),
        ("45000", "DMY", "is a number, not a date"),
        (-3.0, "DMY", "not an Excel date serial number"),
    ],
)
def test_a_bad_date_says_why(raw, fmt, reason):
    with pytest.raises(CellError, match=reason):
        parse_date(raw, fmt, pivot=25)


def test_excel_numbers_keep_their_written_form():
    assert [number_text(v) for v in (54.0, 69.96, 0.1, True, 12)] == ["54", "69.96", "0.1", "1", "12"]


def _column(datatype="text", codes=None, values=None, code="", multiple=False):
    return ItemColumn(
        spec=ColumnSpec(column="c", form="f", item="i", values=values or {}, code=code),
        index=0,
        letter="A",
        datatype=datatype,
        multiple=multiple,
        codes=codes or {},
        group=None,
        date_format="DMY",
        pivot=25,
        missing={"n/a": "NA", "Unknown": "UNK", "-9": "UNK"},
        missing_codes={"NA", "UNK"},
    )


def test_value_maps_and_missing_codes_apply_before_validation():
    sex = _column(codes={"1": "Female", "2": "Male"}, values={"F": "1", "Male": "2"})
    assert [sex.clean(v) for v in ("F", "male", "n/a", "Unknown", "UNK", "", None)] == [
        "1",
        "2",
        "NA",
        "UNK",
        "UNK",
        None,
        None,
    ]
    assert _column("integer").clean(-9.0) == "UNK"  # '-9' from Excel arrives as the float -9.0
    assert _column("integer").clean(54.0) == "54"
    assert _column("boolean").clean("Y") == "1"


def test_checkbox_cells_become_code_lists():
    assert _column(multiple=True, values={"Pain": "pain"}).clean("Pain; fatigue") == ["fatigue", "pain"]
    ticked = _column(code="2")
    assert (ticked.clean("1"), ticked.clean(0.0), ticked.clean("Checked")) == (["2"], [], ["2"])
    with pytest.raises(CellError, match="not 1 or 0"):
        ticked.clean("maybe")


def test_value_map_text_is_parsed_and_errors_say_the_form():
    assert parse_value_map("Male=2; Female = 1\nUnknown=UNK") == {
        "Male": "2",
        "Female": "1",
        "Unknown": "UNK",
    }
    with pytest.raises(ValidationError, match="legacy=code"):
        parse_value_map("Male")


def test_a_mapping_needs_a_subject_column_and_one_way_to_the_event():
    with pytest.raises(ValidationError, match="subject id"):
        Mapping.from_spec({"event": "baseline"})
    with pytest.raises(ValidationError, match="either a fixed event or the column"):
        Mapping.from_spec({"subject_column": "id"})
    with pytest.raises(ValidationError, match="Unknown mapping key"):
        Mapping.from_spec({"subject_column": "id", "event": "baseline", "colums": []})
    spec = Mapping.from_spec(
        {
            "subject_column": "id",
            "event": "baseline",
            "columns": [{"column": "Age", "form": "d", "item": "age"}],
        }
    ).to_spec()
    assert Mapping.from_spec(spec).to_spec() == spec


def test_headers_are_matched_to_items_by_name_and_question():
    targets = [
        {"form": "hn", "item": "diagnosis_date", "texts": ["diagnosis_date", "Date of Diagnosis"]},
        {"form": "hn", "item": "sex", "texts": ["sex", "Sex"]},
        {"form": "hn", "item": "weight_start", "texts": ["weight_start", "BW Start tx (kg)"]},
    ]
    found = suggest_columns(["TCIA code", "Sex", "Date of diagnosis", "BW start tx kg", "Notes"], targets)
    assert {h: s["item"] for h, s in found.items()} == {
        "Sex": "sex",
        "Date of diagnosis": "diagnosis_date",
        "BW start tx kg": "weight_start",
    }
