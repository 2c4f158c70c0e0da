"""The REST API's measurements and responses: refused to who may not see the study, scoped to the
reader's sites, filterable by subject and event, dates shifted for de-identified readers.

Subject a (site A, shift -40) has an SR at baseline (2025-03-01) and week 8 (2025-04-26); subject b
(site B, shift -100) one at baseline; responses and a best response are stored by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from capture.accounts.system import SYSTEM
from capture.measurements.models import BestResponse, MeasurementReport, TimepointResponse
from capture.measurements.store import Coded, IncomingReport, MeasuredValue, store_report
from capture.studies.models import Subject

LONG = Coded("SCT", "103339001", "Long Axis")


@pytest.fixture
def measured(study, subjects):
    Subject.objects.filter(pk=subjects["a"].pk).update(date_shift_days=-40)
    Subject.objects.filter(pk=subjects["b"].pk).update(date_shift_days=-100)
    a, b = (Subject.objects.get(pk=subjects[k].pk) for k in "ab")
    for subject, sop, day, mm in ((a, "1.1", 0, "30"), (a, "1.2", 56, "24"), (b, "2.1", 0, "50")):
        incoming = IncomingReport(
            sop_uid=sop,
            date=subject.enrollment_date + dt.timedelta(days=day),
            values=[MeasuredValue("L1", LONG, Decimal(mm), "mm", site=Coded("SCT", "10200004", "Liver"))],
            observer="Dr Who",
        )
        store_report(
            actor=SYSTEM, study=study, subject=subject, incoming=incoming, source_kind="sr", source="x"
        )
    for subject, day, event, overall in (
        (a, 0, "baseline", ""),
        (a, 56, "week_8", "SD"),
        (b, 0, "baseline", ""),
    ):
        TimepointResponse.objects.create(
            study=study, subject=subject, method="recist11", event=event, day=day, is_baseline=day == 0,
            overall=overall, report=MeasurementReport.objects.get(subject=subject, event=event),
        )  # fmt: skip
    BestResponse.objects.create(study=study, subject=a, method="recist11", response="SD")
    return {"a": a, "b": b}


def get(client, user, url):
    client.force_login(user)
    return client.get(url)


URLS = [
    "/api/v1/studies/trial/measurements/",
    "/api/v1/studies/trial/responses/",
    "/api/v1/studies/trial/best-responses/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    ("persona", "subjects_seen"),
    [
        ("admin", {"a", "b"}),
        ("data_manager", {"a", "b"}),
        ("statistician", {"a", "b"}),
        ("monitor", {"a", "b"}),
        ("coordinator_a", {"a"}),
        ("coordinator_b", {"b"}),
    ],
)
def test_each_role_lists_the_subjects_of_its_sites(client, measured, personas, url, persona, subjects_seen):
    response = get(client, personas[persona], url)
    assert response.status_code == 200
    ids = {row["subject_id"] for row in response.json()["results"]}
    expected = {measured[k].subject_id for k in subjects_seen}
    if "best" in url:
        expected &= {measured["a"].subject_id}  # only a has a best response
    assert ids == expected


@pytest.mark.django_db
@pytest.mark.parametrize("url", URLS)
def test_a_study_you_have_no_role_in_is_not_found(client, measured, personas, url):
    assert get(client, personas["outsider"], url).status_code == 404
    assert get(client, personas["statistician"], url.replace("/trial/", "/other/")).status_code == 404
    # The outsider's own study: an empty list, not the trial's rows.
    assert get(client, personas["outsider"], url.replace("/trial/", "/other/")).json()["results"] == []


@pytest.mark.django_db
def test_a_subject_of_another_site_is_not_found(client, measured, personas):
    b = measured["b"].subject_id
    for kind in ("measurements", "responses"):
        url = f"/api/v1/studies/trial/subjects/{b}/{kind}/"
        assert get(client, personas["coordinator_a"], url).status_code == 404
        assert get(client, personas["coordinator_b"], url).status_code == 200


@pytest.mark.django_db
def test_a_de_identified_reader_gets_shifted_dates_and_no_reader_name(client, measured, personas):
    a = measured["a"].subject_id
    url = f"/api/v1/studies/trial/subjects/{a}/measurements/"
    shifted = get(client, personas["statistician"], url).json()["results"]
    assert [(r["event"], r["day"], r["date"], r["value"]) for r in shifted] == [
        ("baseline", 0, "2025-01-20", "30.000000"),
        ("week_8", 56, "2025-03-17", "24.000000"),
    ]
    assert shifted[0]["reader"] == "" and shifted[0]["finding_site"] == {
        "scheme": "SCT",
        "code": "10200004",
        "meaning": "Liver",
    }
    real = get(client, personas["data_manager"], url).json()["results"]
    assert [r["date"] for r in real] == ["2025-03-01", "2025-04-26"] and real[0]["reader"] == "Dr Who"
    responses = get(client, personas["monitor"], f"/api/v1/studies/trial/subjects/{a}/responses/").json()
    assert [(r["date"], r["overall"]) for r in responses["results"]] == [
        ("2025-01-20", ""),
        ("2025-03-17", "SD"),
    ]


@pytest.mark.django_db
def test_lists_filter_by_subject_event_and_site(client, measured, personas):
    a, b = measured["a"].subject_id, measured["b"].subject_id
    dm = personas["data_manager"]
    rows = get(client, dm, f"/api/v1/studies/trial/measurements/?subject={a}&event=week_8").json()["results"]
    assert [(r["subject_id"], r["value"]) for r in rows] == [(a, "24.000000")]
    rows = get(client, dm, "/api/v1/studies/trial/responses/?site=B").json()["results"]
    assert [r["subject_id"] for r in rows] == [b]
    rows = get(client, dm, "/api/v1/studies/trial/measurements/?event=baseline").json()["results"]
    assert sorted(r["subject_id"] for r in rows) == sorted([a, b])


@pytest.mark.django_db
def test_a_token_without_api_rights_is_refused(client, measured, personas, api_tokens, study):
    from capture.studies.models import Membership

    Membership.objects.filter(study=study, user=personas["statistician"]).update(api_export=False)
    response = client.get(URLS[0], HTTP_AUTHORIZATION=f"Token {api_tokens['statistician']}")
    assert response.status_code == 403
