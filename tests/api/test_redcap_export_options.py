"""Record export details scripts rely on: a gray form's status, filterLogic on form status and with
REDCap's smart variables and functions, rawOrLabel=both, decimalCharacter, csvDelimiter, and the
DAG column of a user limited to a data access group."""

from __future__ import annotations

import csv
import io

import pytest

URL = "/redcap/api/"


def export(client, token, **params):
    response = client.post(URL, {"token": token, "content": "record", "format": "json", **params})
    assert response.status_code == 200, response.content[:300]
    return response.json()


def keys(rows):
    return [(r["record_id"], r["redcap_event_name"], r["redcap_repeat_instance"]) for r in rows]


@pytest.mark.redcap("record", "export")
def test_a_form_without_data_has_status_0_or_blank_when_asked(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    [b_baseline] = export(client, token, records="B-0001")
    assert b_baseline["demographics_complete"] == "0"  # saved Incomplete
    assert b_baseline["lesions_complete"] == "0"  # never saved: gray, REDCap's 0
    [gray] = export(client, token, records="B-0001", exportBlankForGrayFormStatus="true")
    assert gray["lesions_complete"] == "" and gray["demographics_complete"] == "0"


@pytest.mark.redcap("record", "export")
def test_filter_logic_reads_form_status(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    complete = export(client, token, filterLogic="[demographics_complete] = '2'")
    assert keys(complete) == [("A-0001", "baseline_arm_1", "")]
    incomplete = export(client, token, filterLogic="[demographics_complete] = '0'")
    assert keys(incomplete) == [("B-0001", "baseline_arm_1", "")]
    across = export(
        client, token, filterLogic="[baseline_arm_1][demographics_complete] = 2", fields="record_id"
    )
    assert {r["record_id"] for r in across} == {"A-0001"}


@pytest.mark.redcap("record", "export")
def test_filter_logic_knows_record_name_event_name_isnumber_and_isinteger(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    assert {r["record_id"] for r in export(client, token, filterLogic="[record-name] = 'B-0001'")} == {
        "B-0001"
    }
    week_8 = export(client, token, filterLogic="[event-name] = 'week_8_arm_1'")
    assert keys(week_8) == [("A-0001", "week_8_arm_1", "1"), ("A-0001", "week_8_arm_1", "2")]
    decimals = export(client, token, filterLogic="isnumber([weight]) and not isinteger([weight])")
    assert keys(decimals) == [("A-0001", "baseline_arm_1", ""), ("B-0001", "baseline_arm_1", "")]
    assert len(export(client, token, filterLogic="isinteger([age])")) == 2
    assert export(client, token, filterLogic="isnumber([initials]) or isnumber([strain])") == []
    # Text in quotes is text: '[record-name]' is not the smart variable.
    assert export(client, token, filterLogic="[initials] = '[record-name]'") == []
    wrong = client.post(
        URL, {"token": token, "content": "record", "format": "json", "filterLogic": "isnumber(1, 2)"}
    )
    assert wrong.status_code == 400 and "isnumber() takes 1 argument" in wrong.json()["error"]


@pytest.mark.redcap("record", "export", differs="rawOrLabel=both is accepted and answered raw")
def test_raw_or_label_both_is_accepted(client, redcap_tokens, records):
    [row] = export(client, redcap_tokens["admin"], records="B-0001", rawOrLabel="both")
    assert row["sex"] == "2"


@pytest.mark.redcap("record", "export")
def test_decimal_character_writes_numbers_with_a_comma_or_a_dot(client, redcap_tokens, records):
    token = redcap_tokens["admin"]
    [comma] = export(client, token, records="B-0001", decimalCharacter="comma")
    assert (comma["weight"], comma["age"]) == ("71,5", "54")
    [dot] = export(client, token, records="B-0001", decimalCharacter="dot")
    assert dot["weight"] == "71.5"
    bad = client.post(URL, {"token": token, "content": "record", "format": "json", "decimalCharacter": "x"})
    assert bad.status_code == 400


@pytest.mark.redcap("record", "export")
@pytest.mark.parametrize(
    ("given", "delimiter"), [(",", ","), (";", ";"), ("tab", "\t"), ("|", "|"), ("^", "^")]
)
def test_csv_delimiter_is_honoured(client, redcap_tokens, records, given, delimiter):
    body = {
        "token": redcap_tokens["admin"],
        "content": "record",
        "format": "csv",
        "records": "B-0001",
        "fields": "record_id,weight,initials",
        "csvDelimiter": given,
        "decimalCharacter": "comma",
    }
    text = client.post(URL, body).content.decode()
    assert text.splitlines()[0] == delimiter.join(
        [
            "record_id",
            "redcap_event_name",
            "redcap_repeat_instrument",
            "redcap_repeat_instance",
            "initials",
            "weight",
        ]
    )
    [row] = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    assert (row["record_id"], row["weight"], row["initials"]) == ("B-0001", "71,5", "XYZ")


@pytest.mark.redcap("record", "export")
def test_a_user_limited_to_a_dag_does_not_get_the_dag_column(client, redcap_tokens, records):
    mine = export(client, redcap_tokens["coordinator_a"], exportDataAccessGroups="true", fields="record_id")
    assert mine and all("redcap_data_access_group" not in r for r in mine)
    everyone = export(client, redcap_tokens["admin"], exportDataAccessGroups="true", fields="record_id")
    assert {r["redcap_data_access_group"] for r in everyone} == {"a", "b"}
