"""Dates and identifiers inside repeating groups, and values of other events, follow the
disclosure policy on the pages too: a de-identified role sees row dates shifted and row
identifiers masked, and an entry page carries no other form's values to its browser."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.records.services import save_record
from capture.studies import services
from tests.conftest import PERSONAS

DEFINITIONS = Path(__file__).resolve().parent / "deid_definitions"
PHONE = "555-0199-SENTINEL"
CALLED = dt.date(2025, 4, 2)
ROWS = [
    {"contact_date": CALLED.isoformat(), "contact_phone": PHONE, "contact_note": "left a message"},
    {"contact_date": "2025-04-09", "contact_phone": "", "contact_note": "spoke to the patient"},
]


@pytest.fixture
def contacts(personas, make_user):
    load_definitions([DEFINITIONS], actor=SYSTEM)
    owner = make_user("deid_owner", is_staff=True)
    study = services.create_study(
        actor=owner, slug="deid", name="De-identified", schedule=Schedule.objects.get(name="deid")
    )
    site = services.add_site(actor=owner, study=study, code="A", name="Site A")
    for name, (role, codes) in PERSONAS.items():
        services.grant_role(
            actor=SYSTEM, study=study, user=personas[name], role=role, sites=[site] if codes else []
        )
    subject = services.enroll_subject(
        actor=personas["admin"], study=study, site=site, enrollment_date=dt.date(2025, 4, 1)
    )
    assert subject.date_shift_days != 0, "the test needs a subject whose dates move"
    save_record(
        actor=personas["admin"],
        subject=subject,
        event_name="baseline",
        form_name="contacts",
        values={"contacts": ROWS},
    )
    return subject


def page_of(client, name, subject, *rest) -> str:
    args = [subject.study.slug, subject.subject_id, "baseline", "contacts", 1, *rest]
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("persona", ["statistician", "monitor"])
def test_row_dates_shift_and_row_identifiers_are_masked_for_deidentified_roles(
    client, personas, contacts, persona
):
    subject = contacts
    first = (CALLED + dt.timedelta(days=subject.date_shift_days)).isoformat()
    second = (dt.date(2025, 4, 9) + dt.timedelta(days=subject.date_shift_days)).isoformat()
    client.force_login(personas[persona])
    pages = {
        "history of the group": page_of(client, "records:history", subject, "contacts"),
        "record": page_of(client, "web:record", subject),
        "entry": page_of(client, "records:entry", subject),
    }
    for name, page in pages.items():
        leaked = [s for s in (PHONE, CALLED.isoformat(), "2025-04-09") if s in page]
        assert leaked == [], f"the {name} page shows {persona} {leaked}"
        assert first in page and second in page, f"the {name} page lacks the shifted row dates"
    assert f"Contact date: {first}; Phone called: •••• (identifier hidden)" in pages["history of the group"]
    assert "<td>•••• (identifier hidden)</td>" in pages["record"]
    assert (
        f'name="contacts-0-contact_date" class="date" placeholder="YYYY-MM-DD" autocomplete="off" value="{first}"'
        in (pages["entry"])
    )


def test_coordinator_sees_the_real_row_values(client, personas, contacts):
    client.force_login(personas["coordinator_a"])
    page = page_of(client, "records:history", contacts, "contacts")
    assert f"Contact date: {CALLED.isoformat()}; Phone called: {PHONE}" in page


def test_entry_page_of_a_deidentified_role_carries_no_values_of_other_events(client, personas, ecrf_subjects):
    """The treatment form reads [baseline][weight], so its page used to carry every baseline value
    (a date of birth, a visit date) to the browser's calculations."""
    subject = ecrf_subjects["a"]
    visit = {"visit_date": "2025-03-01", "sex": "1", "pregnant": "0", "dob": "1970-05-01", "weight": "70"}
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values=visit,
    )
    url = reverse("records:entry", args=["ecrf", subject.subject_id, "follow_up", "treatment", 1])
    client.force_login(personas["statistician"])
    page = client.get(url).content.decode()
    assert "1970-05-01" not in page and "2025-03-01" not in page
    assert '<script type="application/json" id="ecrf-events">{}</script>' in page
    client.force_login(personas["coordinator_a"])
    assert '"dob":"1970-05-01"' in client.get(url).content.decode()  # the identified page still computes
