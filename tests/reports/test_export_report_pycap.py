"""PyCap's `export_report`, unchanged, against a live Capture: the rows of a saved report (its
fields, events, filter and sort) as REDCap answers `content=report`, with the token user's sites
and disclosure, in json, csv and labels; an unknown report_id is REDCap's error."""

from __future__ import annotations

import pytest
from redcap import Project, RedcapError
from redcap import request as redcap_request

from capture.api.tokens import create_redcap_token
from capture.studies.models import Subject

pytestmark = pytest.mark.django_db(transaction=True)

HEAD = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]


@pytest.fixture
def url(live_server, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield f"{live_server.url}/redcap/api/"
    redcap_request._session.close()


def _project(url, study, user) -> Project:
    return Project(url, create_redcap_token(user=user, study=study)[1])


@pytest.fixture
def women_first(make_report, records):
    return make_report(
        name="Adults by sex",
        fields=["record_id", "initials", "sex", "symptoms", "demographics_complete"],
        filter_logic="[age] >= 18",
        sort_field="sex",
        sort_descending=True,
    )


def _row(record, initials, sex, complete, **extra):
    return {
        "record_id": record,
        "redcap_event_name": "baseline_arm_1",
        "redcap_repeat_instrument": "",
        "redcap_repeat_instance": "",
        "initials": initials,
        "sex": sex,
        "symptoms___pain": "1",
        "symptoms___fatigue": "0",
        "symptoms___nausea": "1",
        "demographics_complete": complete,
        **extra,
    }


@pytest.mark.redcap("report", "export")
def test_export_report_returns_the_reports_rows_in_its_order(url, study, personas, women_first):
    rows = _project(url, study, personas["data_manager"]).export_report(report_id=str(women_first.pk))
    assert rows == [_row("B-0001", "XYZ", "2", "0"), _row("A-0001", "ABC", "1", "2")]


def test_export_report_as_csv_with_label_headers(url, study, personas, women_first):
    text = _project(url, study, personas["admin"]).export_report(
        report_id=str(women_first.pk), format_type="csv", raw_or_label="label", raw_or_label_headers="label"
    )
    assert text.splitlines() == [
        "Subject ID,Event Name,Repeat Instrument,Repeat Instance,Initials,Sex,"
        "Symptoms (choice=Pain),Symptoms (choice=Fatigue),Symptoms (choice=Nausea),Complete?",
        "B-0001,Baseline (Arm 1: Patients),,,XYZ,Male,Checked,Unchecked,Checked,Incomplete",
        "A-0001,Baseline (Arm 1: Patients),,,ABC,Female,Checked,Unchecked,Checked,Complete",
    ]


def test_export_report_gives_a_coordinator_their_sites_rows(url, study, personas, women_first):
    rows = _project(url, study, personas["coordinator_b"]).export_report(report_id=str(women_first.pk))
    assert rows == [_row("B-0001", "XYZ", "2", "0")]


def test_export_report_gives_a_statistician_deidentified_rows(
    url, study, personas, make_report, subjects, women_first
):
    Subject.objects.filter(pk=subjects["a"].pk).update(date_shift_days=-30)
    proj = _project(url, study, personas["statistician"])
    rows = proj.export_report(report_id=str(women_first.pk))
    # No initials column (an identifier); the other values as the data manager sees them.
    expected = [_row("B-0001", "XYZ", "2", "0"), _row("A-0001", "ABC", "1", "2")]
    assert rows == [{k: v for k, v in r.items() if k != "initials"} for r in expected]
    week_8 = make_report(name="Week 8 visits", fields=["visit_date"], events=["week_8_arm_1"])
    visits = proj.export_report(report_id=str(week_8.pk))
    # A-0001's dates moved 30 days back: 2025-04-27 and 2025-04-28 as stored.
    assert [(r["redcap_repeat_instance"], r["visit_date"]) for r in visits] == [
        ("1", "2025-03-28"),
        ("2", "2025-03-29"),
    ]
    assert list(visits[0]) == [*HEAD, "visit_date"]


@pytest.mark.redcap("report", "export")
def test_export_report_honours_the_csv_delimiter(url, study, personas, women_first):
    text = _project(url, study, personas["coordinator_a"]).export_report(
        report_id=str(women_first.pk), format_type="csv", csv_delimiter="tab"
    )
    assert text.splitlines()[1] == "\t".join(
        ["A-0001", "baseline_arm_1", "", "", "ABC", "1", "1", "0", "1", "2"]
    )


def test_export_report_of_an_unknown_or_foreign_report_is_refused(
    url, study, other_study, personas, women_first
):
    proj = _project(url, study, personas["admin"])
    with pytest.raises(RedcapError, match='parameter "report_id" is not valid'):
        proj.export_report(report_id="999999")
    # The outsider's token is for their own study: our report is not one of its reports.
    theirs = _project(url, other_study, personas["outsider"])
    with pytest.raises(RedcapError, match='parameter "report_id" is not valid'):
        theirs.export_report(report_id=str(women_first.pk))
