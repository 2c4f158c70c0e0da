"""Properties of the definition converters (capture/definitions/converters): any REDCap dictionary
rows, choice lists and XML give back a Conversion whose problems say what is wrong — they never
raise. (Nothing is written: converters only read.)"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.definitions.converters import Conversion, cadsr, odm, redcap

# The cross-checks look elements up in the registry (read only): the converters write nothing.
pytestmark = pytest.mark.django_db

HEADER = [api for api, _ in redcap.COLUMNS]
FIELD_TYPES = ["text", "notes", "dropdown", "radio", "checkbox", "yesno", "truefalse", "calc", "slider",
               "descriptive", "file", "sql", "hologram", ""]  # fmt: skip
VALIDATIONS = ["", "integer", "number", "number_2dp", "date_ymd", "datetime_dmy", "time", "email", "bogus"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
CHOICES = st.one_of(
    TEXT,
    st.lists(st.tuples(st.text(max_size=3), TEXT), max_size=4).map(
        lambda pairs: " | ".join(f"{c}, {label}" for c, label in pairs)
    ),
)
EXPRESSION = st.one_of(
    TEXT,
    st.lists(
        st.sampled_from(["[age]", "[sex]", "=", "'1'", ">", "18", "and", "(", ")", "not", " "]), max_size=12
    ).map("".join),
)


@st.composite
def dictionary_row(draw):
    return {
        "field_name": draw(st.sampled_from(["record_id", "age", "sex", "1bad", "Age", ""]) | TEXT),
        "form_name": draw(st.sampled_from(["demo", "visit", "", "Bad Form"])),
        "section_header": draw(st.just("") | TEXT),
        "field_type": draw(st.sampled_from(FIELD_TYPES)),
        "field_label": draw(TEXT),
        "select_choices_or_calculations": draw(CHOICES | EXPRESSION),
        "field_note": draw(st.just("") | TEXT),
        "text_validation_type_or_show_slider_number": draw(st.sampled_from(VALIDATIONS)),
        "text_validation_min": draw(st.sampled_from(["", "0", "abc", "today", "2020-01-01"])),
        "text_validation_max": draw(st.sampled_from(["", "120", "x", "now", "31-12-2020"])),
        "identifier": draw(st.sampled_from(["", "y", "n", "maybe"])),
        "branching_logic": draw(st.just("") | EXPRESSION),
        "required_field": draw(st.sampled_from(["", "y", "NA", "1"])),
        "custom_alignment": draw(st.sampled_from(["", "LV", "RH", "??"])),
        "question_number": draw(st.just("") | TEXT),
        "matrix_group_name": draw(st.sampled_from(["", "m1"])),
        "matrix_ranking": draw(st.sampled_from(["", "y"])),
        "field_annotation": draw(st.sampled_from(["", "@HIDDEN", "@CALCTEXT([age])"])),
    }


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _problems_are_reports(conversion: Conversion) -> None:
    assert isinstance(conversion, Conversion)
    for problem in conversion.problems:
        assert problem.severity in ("error", "warning", "note")
        assert str(problem)


@settings(max_examples=150)
@given(st.lists(dictionary_row(), max_size=6), st.sampled_from(["utf-8", "cp1252"]))
def test_any_dictionary_rows_convert_or_report_problems(rows, encoding):
    data = _csv(rows).encode(encoding, errors="replace")
    _problems_are_reports(redcap.read_dictionary(data, project="fuzz", source="fuzz.csv"))


@settings(max_examples=100)
@given(st.binary(max_size=1024) | TEXT.map(str.encode))
def test_any_bytes_as_a_dictionary_report_problems(data):
    _problems_are_reports(redcap.read_dictionary(data, project="fuzz", source="fuzz.csv"))


@settings(max_examples=200)
@given(CHOICES)
def test_a_choice_list_parses_or_raises_a_value_error_that_says_the_fix(text):
    try:
        choices = redcap.parse_choices(text)
    except ValueError as error:
        assert "Fix:" in str(error)
    else:
        assert choices and all(code for code, _ in choices)


def test_a_dictionary_with_branching_nested_too_deeply_is_an_error_not_a_crash():
    # Found by the bad-input corpus (redcap/deeply_nested_branching.csv): RecursionError, a 500.
    rows = [
        dict.fromkeys(HEADER, "") | {"field_name": "record_id", "form_name": "demo", "field_type": "text"},
        dict.fromkeys(HEADER, "")
        | {
            "field_name": "age",
            "form_name": "demo",
            "field_type": "text",
            "branching_logic": "not " * 3000 + "1",
        },
    ]
    conversion = redcap.read_dictionary(_csv(rows).encode(), project="fuzz", source="fuzz.csv")
    assert any("nested too deeply" in str(p) for p in conversion.errors), conversion.problems


XML_PIECES = st.sampled_from(
    ["<DataElement>", "</DataElement>", "<PUBLICID>1</PUBLICID>", "<VERSION>1.0</VERSION>", "<LONGNAME>x</LONGNAME>",
     "<VALUEDOMAIN>", "</VALUEDOMAIN>", "<Datatype>NUMBER</Datatype>", "<forms>", "<form>", "</form>", "</forms>",
     '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">', "</ODM>", '<Study OID="S">', "</Study>",
     '<MetaDataVersion OID="M" Name="m">', "</MetaDataVersion>", '<ItemDef OID="I" Name="a" DataType="text"/>',
     "&amp;", "&lt;", "<!-- c -->", "<![CDATA[x]]>", "text", "<", ">", "&"]
)  # fmt: skip
XML_TEXT = st.lists(XML_PIECES, max_size=20).map(
    lambda parts: "<?xml version='1.0'?><DataElementsList>" + "".join(parts)
)


@settings(max_examples=150)
@given(XML_TEXT | st.binary(max_size=512).map(lambda b: b.decode("latin-1")))
def test_any_xml_converts_or_reports_problems(text):
    data = text.encode("utf-8")
    _problems_are_reports(cadsr.read_cde(data, source="fuzz.xml"))
    _problems_are_reports(cadsr.read_formcart(data, source="fuzz.xml"))
    _problems_are_reports(odm.read_odm(data, project="fuzz", source="fuzz.xml"))


def test_a_dictionary_with_a_header_and_no_fields_is_an_error_not_a_crash():
    # Found by the dictionary-rows property (rows=[]): the empty schedule failed pydantic, a 500.
    conversion = redcap.read_dictionary(_csv([]).encode(), project="fuzz", source="fuzz.csv")
    assert [str(p) for p in conversion.errors] == [
        "line 2: the dictionary has a header but no fields. Fix: download the whole data dictionary "
        "(Project Setup → Data Dictionary), not only its first line."
    ]
