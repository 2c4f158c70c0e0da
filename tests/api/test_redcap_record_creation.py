"""REDCap API record creation (issue 13, items 1 and 7): importRecords creates subjects where the
study keeps its source's ids and the user may enrol; forceAutoNumber and generateNextRecordName
behave as REDCap's; a study that generates ids refuses an unknown id and enrols by its pattern."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from capture.api import tokens
from capture.migration.redcap import migrate
from capture.studies import services
from capture.studies.models import Subject

URL = "/redcap/api/"
DICTIONARY = (
    "field_name,form_name,field_type,field_label,text_validation_type_or_show_slider_number,"
    "select_choices_or_calculations\n"
    "record_id,enrolment,text,Record,,\n"
    "height,enrolment,text,Height,number_comma_decimal,\n"
    'prereq_checkbox,enrolment,checkbox,Prerequisites,,"ABC, First | DEF, Second"\n'
)
DAGS = "data_access_group_name,unique_group_name\nNorth,north\nSouth,south\n"
RECORDS = 'record_id,redcap_data_access_group,height,prereq_checkbox___abc\na,north,"1,54",1\n7,south,2,0\n'


def post(client, token, **params):
    return client.post(URL, {"token": token, **params})


@pytest.fixture
def source_study(make_user):
    boss = make_user("boss", is_staff=True)
    files = [("d.csv", DICTIONARY.encode()), ("g.csv", DAGS.encode()), ("r.csv", RECORDS.encode())]
    report = migrate(user=boss, slug="kept", files=files)
    assert report.ok, "\n".join(report.lines())
    return report.study, boss, tokens.create_redcap_token(user=boss, study=report.study)[1]


def test_import_creates_a_record_at_its_dag_in_a_study_that_keeps_source_ids(client, source_study):
    study, _, token = source_study
    data = [
        {
            "record_id": "AAAA",
            "redcap_data_access_group": "south",
            "height": "1,7",
            "prereq_checkbox___ABC": "1",
        }
    ]
    response = post(
        client,
        token,
        content="record",
        format="json",
        data=json.dumps(data),
        returnContent="ids",
        returnFormat="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == ["AAAA"]
    subject = Subject.objects.get(study=study, subject_id="AAAA")
    assert subject.site.name == "South"
    record = subject.records.get()
    # a comma decimal for a number_comma_decimal field; the checkbox column matched whatever its case
    assert (str(record.data["height"]), record.data["prereq_checkbox"]) == ("1.7", ["ABC"])


@pytest.mark.redcap("generateNextRecordName", "export")
def test_generate_next_record_name_is_one_more_than_the_largest_number(client, source_study):
    _, _, token = source_study
    response = post(client, token, content="generateNextRecordName")
    assert response.content.decode() == "8"  # ids are "a" and "7"


def test_force_auto_number_gives_new_records_the_next_numbers(client, source_study):
    study, _, token = source_study
    data = [
        {"record_id": "x", "redcap_data_access_group": "north", "height": "1"},
        {"record_id": "x", "redcap_data_access_group": "north", "prereq_checkbox___def": "1"},
        {"record_id": "y", "redcap_data_access_group": "north", "height": "2"},
    ]
    response = post(
        client, token, content="record", format="json", data=json.dumps(data), forceAutoNumber="true",
        returnContent="auto_ids", returnFormat="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json() == ["8,x", "9,y"]
    assert sorted(Subject.objects.filter(study=study).values_list("subject_id", flat=True)) == [
        "7",
        "8",
        "9",
        "a",
    ]


def test_a_study_that_generates_ids_refuses_an_unknown_record_and_auto_numbers_by_its_pattern(
    client, study, redcap_tokens
):
    token = redcap_tokens["coordinator_a"]
    data = [{"record_id": "ZZ", "redcap_event_name": "baseline_arm_1", "initials": "ABC"}]
    refused = post(client, token, content="record", format="json", data=json.dumps(data))
    assert refused.status_code == 400
    assert "generates its subject ids" in refused.content.decode()
    assert not Subject.objects.filter(study=study).exists()
    made = post(
        client, token, content="record", format="json", data=json.dumps(data), forceAutoNumber="true",
        returnContent="auto_ids", returnFormat="json",
    )  # fmt: skip
    assert made.status_code == 200, made.content
    assert made.json() == ["A-0001,ZZ"]  # the coordinator's one site, the pattern's next id


def test_enrolment_takes_a_given_id_only_where_the_study_keeps_source_ids(study, personas, source_study):
    site = study.sites.get(code="A")
    with pytest.raises(ValidationError, match="generates subject ids from its pattern"):
        services.enroll_subject(
            actor=personas["admin"],
            study=study,
            site=site,
            enrollment_date=dt.date(2025, 1, 1),
            subject_id="P1",
        )
    kept, boss, _ = source_study
    subject = services.enroll_subject(
        actor=boss, study=kept, site=kept.sites.first(), enrollment_date=dt.date(2025, 1, 1), subject_id="P 1"
    )
    assert subject.subject_id == "P 1"
    with pytest.raises(ValidationError, match="exists already"):
        services.enroll_subject(
            actor=boss,
            study=kept,
            site=kept.sites.first(),
            enrollment_date=dt.date(2025, 1, 1),
            subject_id="P 1",
        )


def test_a_record_id_taken_at_a_site_the_user_does_not_see_is_not_created_nor_described(
    client, source_study, make_user
):
    study, boss, _ = source_study
    north = study.sites.get(name="North")
    clerk = make_user("clerk")
    services.grant_role(actor=boss, study=study, user=clerk, role="coordinator", sites=[north])
    token = tokens.create_redcap_token(user=clerk, study=study)[1]
    data = [{"record_id": "7", "redcap_data_access_group": "north", "height": "3"}]  # "7" is at South
    response = post(client, token, content="record", format="json", data=json.dumps(data))
    assert response.status_code == 400
    assert response.json()["error"].startswith('row 1: record "7" cannot be created: the id is taken')
    assert Subject.objects.get(study=study, subject_id="7").site.name == "South"


def test_an_import_enrols_its_new_records_in_one_batch(client, source_study):
    study, _, token = source_study

    def import_new(first: int, count: int) -> int:
        data = [
            {"record_id": f"n{n}", "redcap_data_access_group": "north" if n % 2 else "south", "height": "1"}
            for n in range(first, first + count)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = post(client, token, content="record", format="json", data=json.dumps(data))
        assert response.status_code == 200, response.content
        return len(queries)

    few, many = import_new(0, 5), import_new(5, 40)
    assert many - few < 20  # one enrolment a record was about ten queries each
    assert Subject.objects.filter(study=study, subject_id__startswith="n").count() == 45
    assert Subject.objects.get(study=study, subject_id="n7").site.name == "North"


def test_a_taken_id_among_new_records_is_reported_on_its_row_and_nothing_is_created(
    client, source_study, make_user
):
    study, boss, _ = source_study
    north = study.sites.get(name="North")
    clerk = make_user("clerk")
    services.grant_role(actor=boss, study=study, user=clerk, role="coordinator", sites=[north])
    token = tokens.create_redcap_token(user=clerk, study=study)[1]
    data = [
        {"record_id": rid, "redcap_data_access_group": "north", "height": "3"} for rid in ("n1", "7", "n2")
    ]  # "7" is at South, which the clerk does not see
    response = post(client, token, content="record", format="json", data=json.dumps(data))
    assert response.status_code == 400
    assert response.json()["error"] == (
        'row 2: record "7" cannot be created: the id is taken (perhaps at a site you do not see).'
    )
    assert not Subject.objects.filter(study=study, subject_id__in=["n1", "n2"]).exists()
