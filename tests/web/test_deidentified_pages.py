"""De-identified roles see one shifted, masked world on every page (issue 12, findings 2 and 3).

A statistician and a monitor (no `view_identifiers`) fetch each page of a subject whose shipped
demographics hold an MRN, a date of birth and an enrolment date. No page may show the MRN, the
date of birth (real or shifted), a real date or a real timestamp of the subject; where a date or
timestamp is shown, it is the real one moved by the subject's `date_shift_days`, worked out here
by hand. A coordinator and the PI still see the real values.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from capture.audit.models import AuditEvent
from capture.records import entry
from capture.records.models import FormRecord, Query, Signature, Status, SubjectLock
from capture.records.services import open_query, save_record, set_subject_lock, sign_record
from capture.studies import services
from tests.conftest import PASSWORD, persona_study

MRN = "MRN-4471-SENTINEL"
BORN = dt.date(1965, 7, 3)
ENROLLED = dt.date(2025, 12, 9)
AGE = "60"  # completed years from 1965-07-03 to 2025-12-09
DEMOGRAPHICS = {
    "medical_record_number": MRN,
    "date_of_birth": BORN.isoformat(),
    "enrollment_date": ENROLLED.isoformat(),
    "gender": "female",
    "race": "white",
    "ethnicity": "not hispanic or latino",
    "height": "165",
    "weight": "60",
}
DEIDENTIFIED = ["statistician", "monitor"]
IDENTIFIED = ["coordinator_a", "pi"]


def minute(ts: dt.datetime) -> str:
    """A timestamp as the pages print it (Y-m-d H:i, in the site's time zone)."""
    return timezone.localtime(ts).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def qin(personas, make_user):
    """The shipped co-clinical study with one site A patient: demographics saved twice (so the
    history has a change), signed by the PI, queried on the MRN and the date of birth by the
    monitor, and the subject locked by the data manager."""
    definitions = settings.CAPTURE["DEFINITIONS_DIR"]
    study = persona_study(
        make_user, personas, definitions=definitions, schedule="qin_coclinical", slug="qin", name="QIN"
    )
    subject = services.enroll_subject(
        actor=personas["admin"], study=study, site=study.sites.get(code="A"), enrollment_date=ENROLLED
    )
    assert subject.date_shift_days != 0, "the test needs a subject whose dates move"
    first = dict(DEMOGRAPHICS, enrollment_date="2025-12-08")
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=first,
    )
    record = save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=DEMOGRAPHICS,
        status=Status.COMPLETE,
        expected_version=1,
    )
    sign_record(actor=personas["pi"], record=record, password=PASSWORD)
    for field in ("medical_record_number", "date_of_birth"):
        open_query(actor=personas["monitor"], record=record, field=field, text="Please check against source.")
    set_subject_lock(actor=personas["data_manager"], subject=subject, locked=True, reason="interim analysis")
    return study, subject, FormRecord.objects.get(pk=record.pk)


def shifted(subject, value):
    """A date or timestamp moved by the subject's shift, by hand."""
    return value + dt.timedelta(days=subject.date_shift_days)


def real_timestamps(record) -> set[str]:
    """Every timestamp of the subject the pages could show, as printed."""
    stamps = {record.updated_at, record.created_at}
    stamps |= set(Signature.objects.filter(record=record).values_list("signed_at", flat=True))
    stamps |= set(SubjectLock.objects.filter(subject=record.subject).values_list("locked_at", flat=True))
    for query in Query.objects.filter(record=record):
        stamps |= {query.opened_at, query.updated_at}
        stamps |= set(query.messages.values_list("at", flat=True))
    stamps |= set(
        AuditEvent.objects.filter(object_type="record", object_id=str(record.pk)).values_list(
            "timestamp", flat=True
        )
    )
    return {minute(ts) for ts in stamps}


def record_url(name, subject, *rest, instance=1):
    return reverse(
        name, args=[subject.study.slug, subject.subject_id, "baseline", "demographics", instance, *rest]
    )


def pages(study, subject, record):
    """Every page that shows something of the subject, as (name, url)."""
    mrn_query = Query.objects.get(record=record, field="medical_record_number")
    dob_query = Query.objects.get(record=record, field="date_of_birth")
    return [
        ("dashboard", reverse("web:dashboard", args=[study.slug]) + "?arm=patients"),
        ("subject", reverse("web:subject", args=[study.slug, subject.subject_id])),
        ("record", record_url("web:record", subject)),
        ("entry", record_url("records:entry", subject)),
        ("history dob", record_url("records:history", subject, "date_of_birth")),
        ("history mrn", record_url("records:history", subject, "medical_record_number")),
        ("history enrolment", record_url("records:history", subject, "enrollment_date")),
        ("record queries", record_url("records:record_queries", subject)),
        ("study queries", reverse("records:queries", args=[study.slug]) + "?status=all"),
        ("query mrn", reverse("records:query", args=[study.slug, mrn_query.pk])),
        ("query dob", reverse("records:query", args=[study.slug, dob_query.pk])),
    ]


def fetch(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


@pytest.mark.parametrize("persona", DEIDENTIFIED)
def test_no_page_shows_a_deidentified_role_an_identifier_a_real_date_or_a_real_timestamp(
    client, personas, qin, persona
):
    study, subject, record = qin
    client.force_login(personas[persona])
    forbidden = {
        MRN,
        BORN.isoformat(),
        shifted(subject, BORN).isoformat(),  # a date of birth is an identifier: not even shifted
        ENROLLED.isoformat(),
        "2025-12-08",
        *real_timestamps(record),
    }
    leaks = {}
    for name, url in pages(study, subject, record):
        page = fetch(client, url)
        if leaked := sorted(s for s in forbidden if s in page):
            leaks[name] = leaked
    assert leaks == {}, f"pages show {persona} what the disclosure policy hides: {leaks}"


@pytest.mark.parametrize("persona", DEIDENTIFIED)
def test_dates_and_timestamps_a_deidentified_role_sees_are_the_subjects_shifted_ones(
    client, personas, qin, persona
):
    study, subject, record = qin
    client.force_login(personas[persona])
    enrolled = shifted(subject, ENROLLED).isoformat()
    saved = minute(shifted(subject, record.updated_at))

    page = fetch(client, reverse("web:subject", args=[study.slug, subject.subject_id]))
    assert f"<dt>Enrolled</dt><dd>{enrolled}</dd>" in page
    lock = SubjectLock.objects.get(subject=subject)
    assert f"on {minute(shifted(subject, lock.locked_at))}" in page

    page = fetch(client, record_url("web:record", subject))
    assert f"last saved {saved}" in page and f"<dd>{enrolled}</dd>" in page
    assert "•••• (identifier hidden)" in page and f"<dd>{AGE} years</dd>" in page

    page = fetch(client, record_url("records:entry", subject))
    assert f"last saved {saved}" in page
    assert (
        f'name="enrollment_date" class="date" placeholder="YYYY-MM-DD" autocomplete="off" value="{enrolled}"'
        in page
    )
    signature = Signature.objects.get(record=record)
    assert f"Signed by pi on {minute(shifted(subject, signature.signed_at))}" in page

    page = fetch(client, record_url("records:history", subject, "enrollment_date"))
    first_saved = shifted(subject, dt.date(2025, 12, 8)).isoformat()
    assert f"<td>{first_saved}</td><td>{enrolled}</td>" in page
    audit = AuditEvent.objects.filter(object_type="record", object_id=str(record.pk)).order_by("seq")
    for event in audit:
        assert minute(shifted(subject, event.timestamp)) in page

    page = fetch(client, record_url("records:history", subject, "date_of_birth"))
    assert "<td>(blank)</td><td>•••• (identifier hidden)</td>" in page

    query = Query.objects.get(record=record, field="date_of_birth")
    page = fetch(client, reverse("records:query", args=[study.slug, query.pk]))
    assert "current value: <strong>•••• (identifier hidden)</strong>" in page
    assert minute(shifted(subject, query.messages.get().at)) in page

    for url in (record_url("records:record_queries", subject), reverse("records:queries", args=[study.slug])):
        page = fetch(client, url)
        assert f"<td>{minute(shifted(subject, query.updated_at))}</td>" in page


def test_monitor_raising_a_query_on_an_identifier_sees_the_mask_not_the_value(client, personas, qin):
    study, subject, record = qin
    client.force_login(personas["monitor"])
    for field in ("medical_record_number", "date_of_birth"):
        page = fetch(client, record_url("records:query_new", subject) + f"?field={field}")
        assert "current value: <strong>•••• (identifier hidden)</strong>" in page, field
        assert MRN not in page and BORN.isoformat() not in page
    page = fetch(client, record_url("records:query_new", subject) + "?field=enrollment_date")
    assert f"current value: <strong>{shifted(subject, ENROLLED).isoformat()}</strong>" in page


@pytest.mark.parametrize("persona", IDENTIFIED)
def test_coordinator_and_pi_still_see_the_real_values(client, personas, qin, persona):
    study, subject, record = qin
    client.force_login(personas[persona])
    page = fetch(client, reverse("web:subject", args=[study.slug, subject.subject_id]))
    assert f"<dt>Enrolled</dt><dd>{ENROLLED.isoformat()}</dd>" in page
    page = fetch(client, record_url("records:entry", subject))
    assert MRN in page and BORN.isoformat() in page and f"last saved {minute(record.updated_at)}" in page
    # The subject is locked, so the page shows the stored calculations (data-server-logic), but
    # it is the identified page: real values, nothing said about shifted dates.
    assert (
        "Dates are shifted" not in page
        and 'id="deidentified-read-only"' not in page
        and entry.unsign(hidden(page)["__base"])["medical_record_number"] == MRN
    )
    page = fetch(client, record_url("records:history", subject, "medical_record_number"))
    assert MRN in page
    query = Query.objects.get(record=record, field="medical_record_number")
    page = fetch(client, reverse("records:query", args=[study.slug, query.pk]))
    assert f"current value: <strong>{MRN}</strong>" in page and minute(query.messages.get().at) in page


def hidden(page: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(__\w+)" value="([^"]*)"', page))


def test_deidentified_entry_page_keeps_the_stored_calculation_and_carries_no_raw_record(
    client, personas, qin
):
    study, subject, record = qin
    client.force_login(personas["statistician"])
    page = fetch(client, record_url("records:entry", subject))
    # The age the server stored, not one the browser would work out from a hidden date of birth.
    assert re.search(
        r'<input type="text" class="calc" readonly tabindex="-1" id="i-age_at_enrollment" '
        rf'name="age_at_enrollment" value="{AGE}"',
        page,
    )
    assert 'class="ecrf" novalidate data-server-logic>' in page
    # The signed token of the page's starting values is readable by anyone: it must not carry them.
    assert hidden(page)["__base"] == ""


def test_dashboard_search_does_not_match_identifier_values_for_a_deidentified_role(client, personas, qin):
    study, subject, record = qin
    dashboard = reverse("web:dashboard", args=[study.slug])
    client.force_login(personas["statistician"])
    for term in (MRN, "4471", ENROLLED.isoformat(), BORN.isoformat()):
        page = fetch(client, dashboard + f"?arm=patients&q={term}")
        assert subject.subject_id not in page and "0 subjects" in page, term
    assert subject.subject_id in fetch(client, dashboard + f"?arm=patients&q={subject.subject_id}")


@pytest.fixture
def statistician_who_may_enter(personas, qin):
    """A role that has enter_data without view_identifiers (no shipped role does: granted here)."""
    study, subject, record = qin
    SubjectLock.objects.filter(subject=subject).delete()  # so that only the policy stops a save
    FormRecord.objects.filter(pk=record.pk).update(locked=False)
    assign_perm("studies.enter_data", personas["statistician"], study)
    return personas["statistician"]


def test_enter_data_without_view_identifiers_gives_a_read_only_page_that_never_saves(
    client, personas, qin, statistician_who_may_enter
):
    study, subject, record = qin
    client.force_login(statistician_who_may_enter)
    url = record_url("records:entry", subject)
    page = fetch(client, url)
    assert 'id="deidentified-read-only"' in page and "cannot save your changes" in page
    assert '<fieldset class="plain" disabled>' in page
    assert MRN not in page and ENROLLED.isoformat() not in page
    # Post back what the page shows (the shifted enrolment date): refused, nothing stored.
    shown = shifted(subject, ENROLLED).isoformat()
    response = client.post(
        url,
        {
            **DEMOGRAPHICS,
            "medical_record_number": "",
            "enrollment_date": shown,
            "__status": "2",
            "__version": str(record.version),
            "__reason": "x",
        },
    )
    assert response.status_code == 403
    after = FormRecord.objects.get(pk=record.pk)
    assert after.version == record.version and after.data["enrollment_date"] == ENROLLED.isoformat()
    # Nor do the subject and record pages offer to edit or add.
    page = fetch(client, reverse("web:subject", args=[study.slug, subject.subject_id]))
    assert "+ add" not in page
    assert "Edit the form" not in fetch(client, record_url("web:record", subject))


def test_enrol_is_refused_to_a_role_that_sees_the_study_deidentified(client, personas, qin):
    study, subject, record = qin
    assign_perm("studies.enroll_subject", personas["monitor"], study)
    client.force_login(personas["monitor"])
    assert client.get(reverse("web:enroll", args=[study.slug])).status_code == 403
    assert "Enrol a subject" not in fetch(client, reverse("web:dashboard", args=[study.slug]))
    client.force_login(personas["coordinator_a"])
    assert client.get(reverse("web:enroll", args=[study.slug])).status_code == 200


def test_enter_data_without_view_identifiers_may_not_add_or_remove_instances(
    client, personas, qin, statistician_who_may_enter
):
    study, subject, record = qin
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="serum_markers",
        values={},
    )
    client.force_login(statistician_who_may_enter)
    args = [study.slug, subject.subject_id, "baseline", "serum_markers"]
    assert client.get(reverse("records:add_instance", args=args)).status_code == 403
    response = client.post(reverse("records:remove", args=[*args, 1]), {"reason": "entered twice"})
    assert response.status_code == 403
    assert FormRecord.objects.filter(subject=subject, form_name="serum_markers").count() == 1


def test_query_list_of_a_deidentified_role_is_in_the_order_of_the_times_it_shows(client, personas, qin):
    study, subject, record = qin
    other = services.enroll_subject(
        actor=personas["admin"], study=study, site=subject.site, enrollment_date=ENROLLED
    )
    assert other.date_shift_days != subject.date_shift_days, "the test needs two different shifts"
    # The subject whose dates move less gets the earlier query: shown, its query is the later one.
    less, more = sorted([subject, other], key=lambda s: s.date_shift_days, reverse=True)
    records = {}
    for s in (less, more):
        records[s.pk] = (
            record
            if s == subject
            else save_record(
                actor=personas["coordinator_a"],
                subject=s,
                event_name="baseline",
                form_name="demographics",
                values={},
            )
        )
    Query.objects.all().delete()
    first = open_query(actor=personas["monitor"], record=records[less.pk], field="gender", text="Check.")
    second = open_query(actor=personas["monitor"], record=records[more.pk], field="gender", text="Check.")
    assert first.updated_at <= second.updated_at
    client.force_login(personas["statistician"])
    page = fetch(client, reverse("records:queries", args=[study.slug]))
    assert page.index(f"#{first.pk}</a>") < page.index(f"#{second.pk}</a>")
