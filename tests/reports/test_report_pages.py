"""The report pages: a data manager defines a report in the web; everyone who sees the study opens
it as a table (paged) and as a CSV, with their own sites' rows and their role's disclosure; a role
that may not define reports, another study's member, or a report of another study is refused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.records.services import save_record
from capture.reports import views
from capture.reports.models import Report
from capture.reports.services import save_report
from capture.studies import services as studies
from capture.studies.models import Subject
from tests.api.conftest import DEMOGRAPHICS

FIELDS = ["record_id", "initials", "sex", "age", "demographics_complete"]


@pytest.fixture
def demographics(make_report, records):
    return make_report(fields=FIELDS, filter_logic="[age] >= 18", sort_field="sex", sort_descending=True)


def _url(name: str, report: Report, **extra) -> str:
    return reverse(f"reports:{name}", kwargs={"slug": report.study.slug, "pk": report.pk, **extra})


def test_a_data_manager_defines_a_report_in_the_web(client, personas, study, records):
    client.force_login(personas["data_manager"])
    page = client.get(reverse("reports:new", kwargs={"slug": study.slug}))
    assert page.status_code == 200 and 'value="symptoms"' in page.content.decode()
    response = client.post(
        reverse("reports:new", kwargs={"slug": study.slug}),
        {
            "name": "Women",
            "columns": ["record_id", "sex", "age"],
            "events": ["baseline_arm_1"],
            "filter_logic": "[sex] = '2'",
            "sort_field": "age",
        },
    )
    report = Report.objects.get(study=study, name="Women")
    assert response.status_code == 302 and response["Location"] == _url("view", report)
    assert (report.fields, report.events, report.filter_logic) == (
        ["record_id", "sex", "age"],
        ["baseline_arm_1"],
        "[sex] = '2'",
    )
    assert AuditEvent.objects.filter(action="report.create", object_id=str(report.pk)).count() == 1


def test_the_form_shows_why_a_filter_is_refused(client, personas, study):
    client.force_login(personas["data_manager"])
    response = client.post(
        reverse("reports:new", kwargs={"slug": study.slug}),
        {"name": "Bad", "columns": ["sex"], "filter_logic": "[shoe_size] > 40"},
    )
    assert response.status_code == 200
    assert "reads fields this study does not have: shoe_size" in response.content.decode()
    assert not Report.objects.exists()


def test_a_data_manager_edits_and_deletes_a_report(client, personas, demographics):
    client.force_login(personas["data_manager"])
    form = client.get(_url("edit", demographics))
    assert form.status_code == 200 and "[age] &gt;= 18" in form.content.decode()
    client.post(_url("edit", demographics), {"name": "Renamed", "columns": ["sex"]})
    demographics.refresh_from_db()
    assert (demographics.name, demographics.fields, demographics.filter_logic) == ("Renamed", ["sex"], "")
    assert client.post(_url("delete", demographics)).status_code == 302
    assert not Report.objects.exists()


@pytest.mark.parametrize("persona", ["coordinator_a", "statistician", "monitor", "pi"])
def test_roles_that_do_not_manage_data_may_not_define_reports(client, personas, study, demographics, persona):
    client.force_login(personas[persona])
    assert client.get(reverse("reports:new", kwargs={"slug": study.slug})).status_code == 403
    assert client.post(_url("edit", demographics), {"name": "X", "columns": ["sex"]}).status_code == 403
    assert client.post(_url("delete", demographics)).status_code == 403
    assert Report.objects.get().name == "Demographics"


def test_a_coordinator_sees_only_their_sites_rows(client, personas, demographics):
    client.force_login(personas["coordinator_a"])
    page = client.get(_url("view", demographics)).content.decode()
    assert "A-0001" in page and "ABC" in page
    assert "B-0001" not in page and "XYZ" not in page
    csv = client.get(_url("csv", demographics)).content.decode()
    assert csv == (
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,initials,sex,age,"
        "demographics_complete\n"
        "A-0001,baseline_arm_1,,,ABC,1,54,2\n"
    )


def test_the_csv_has_every_row_in_the_reports_order(client, personas, demographics):
    client.force_login(personas["data_manager"])
    response = client.get(_url("csv", demographics))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="trial-report-{demographics.pk}.csv"' in response["Content-Disposition"]
    # Sorted by sex, descending: B-0001 (2) before A-0001 (1).
    assert response.content.decode().splitlines()[1:] == [
        "B-0001,baseline_arm_1,,,XYZ,2,54,0",
        "A-0001,baseline_arm_1,,,ABC,1,54,2",
    ]


def test_the_csv_with_labels_has_labels_and_label_headers(client, personas, demographics):
    client.force_login(personas["data_manager"])
    lines = client.get(_url("csv", demographics) + "?labels=1").content.decode().splitlines()
    assert lines[0] == (
        "Subject ID,Event Name,Repeat Instrument,Repeat Instance,Initials,Sex,Age at enrolment,Complete?"
    )
    assert lines[2] == "A-0001,Baseline (Arm 1: Patients),,,ABC,Female,54,Complete"


def test_a_deidentified_role_sees_deidentified_values(client, personas, make_report, records, subjects):
    Subject.objects.filter(pk=subjects["a"].pk).update(date_shift_days=-30)
    report = make_report(name="Week 8", fields=["initials", "visit_date"], events=["week_8_arm_1"])
    client.force_login(personas["statistician"])
    csv = client.get(_url("csv", report)).content.decode()
    # No initials column (an identifier), and A-0001's dates moved 30 days back.
    assert csv == (
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,visit_date\n"
        "A-0001,week_8_arm_1,lesions,1,2025-03-28\n"
        "A-0001,week_8_arm_1,lesions,2,2025-03-29\n"
    )
    page = client.get(_url("view", report)).content.decode()
    assert "2025-03-28" in page and "2025-04-27" not in page


def test_the_table_is_paged(client, personas, demographics, monkeypatch):
    monkeypatch.setattr(views, "PAGE_ROWS", 1)
    client.force_login(personas["monitor"])
    first = client.get(_url("view", demographics)).content.decode()
    assert "B-0001" in first and "A-0001" not in first and "Page 1 of 2" in first
    second = client.get(_url("view", demographics) + "?page=2").content.decode()
    assert "A-0001" in second and "B-0001" not in second


def test_a_page_of_a_wide_report_stays_under_300_kb(client, personas, make_report, study, records, subjects):
    site = subjects["a"].site
    for _ in range(60):
        subject = studies.enroll_subject(
            actor=personas["admin"], study=study, site=site, enrollment_date=subjects["a"].enrollment_date
        )
        save_record(
            actor=personas["admin"],
            subject=subject,
            event_name="baseline",
            form_name="demographics",
            values=DEMOGRAPHICS,
        )
    report = make_report(name="All demographics", fields=["initials", "sex", "age", "symptoms", "weight"])
    client.force_login(personas["data_manager"])
    page = client.get(_url("view", report))
    assert page.content.decode().count("<tr>") == views.PAGE_ROWS + 1  # the header and one page of rows
    assert len(page.content) < 300_000


def test_a_report_of_another_study_is_not_found(client, personas, other_study, demographics):
    foreign = save_report(
        actor=personas["outsider"], report=Report(study=other_study, name="Theirs", fields=["sex"])
    )
    client.force_login(personas["data_manager"])
    # Their report through our study's address, and through theirs: neither exists for us.
    assert client.get(reverse("reports:view", kwargs={"slug": "trial", "pk": foreign.pk})).status_code == 404
    assert client.get(_url("view", foreign)).status_code == 404
    client.force_login(personas["outsider"])
    assert client.get(_url("view", demographics)).status_code == 404
    assert client.get(_url("csv", demographics)).status_code == 404


def test_the_study_page_links_to_its_reports(client, personas, study, demographics):
    client.force_login(personas["coordinator_a"])
    dashboard = client.get(reverse("web:dashboard", kwargs={"slug": study.slug})).content.decode()
    assert reverse("reports:list", kwargs={"slug": study.slug}) in dashboard
    listing = client.get(reverse("reports:list", kwargs={"slug": study.slug})).content.decode()
    assert "Demographics" in listing and "New report" not in listing


def test_a_report_whose_field_left_the_study_says_why_it_cannot_run(client, personas, demographics):
    # As after a new definition version drops an item: the saved report names a field no longer there.
    Report.objects.filter(pk=demographics.pk).update(fields=["sex", "retired_item"])
    client.force_login(personas["coordinator_a"])
    page = client.get(_url("view", demographics)).content.decode()
    assert "This report cannot run: Not fields of this study: retired_item." in page
    csv = client.get(_url("csv", demographics))
    assert csv.status_code == 409 and "retired_item" in csv.content.decode()
