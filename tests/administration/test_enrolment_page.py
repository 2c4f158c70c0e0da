"""The enrol page asks only what the kind of subject needs and says the id it will give."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.records.services import save_record
from capture.studies import services
from capture.studies.models import Subject


def test_a_patient_is_not_asked_the_animal_model_fields(client, personas, study, subjects):
    client.force_login(personas["admin"])
    page = client.get(reverse("web:enroll", args=[study.slug])).content.decode()
    assert 'name="derived_from"' not in page and 'name="model_type"' not in page
    assert '<option value="' in page and "Patients" in page  # the patient arm is offered
    animal = client.get(reverse("web:enroll", args=[study.slug]), {"kind": "animal"}).content.decode()
    assert 'name="derived_from"' in animal and 'name="model_type"' in animal
    assert "Patients" not in animal.split('name="arm"')[1].split("</select>")[0]


def test_the_page_says_the_next_id_in_words_not_the_pattern(client, personas, study, subjects):
    client.force_login(personas["admin"])
    page = client.get(reverse("web:enroll", args=[study.slug])).content.decode()
    assert "{seq" not in page
    assert (
        "the site&#x27;s code, then &#x27;-&#x27;, then the subject&#x27;s number at the site, "
        "4 digits with leading zeros" in page
    )
    assert "<b>A-0003</b> at site A, <b>B-0002</b> at site B" in page
    client.force_login(personas["coordinator_b"])
    assert "A-0003" not in client.get(reverse("web:enroll", args=[study.slug])).content.decode()


def test_an_animal_model_is_enrolled_from_its_own_page(client, personas, study, subjects):
    client.force_login(personas["admin"])
    response = client.post(
        reverse("web:enroll", args=[study.slug]),
        {
            "kind": "animal",
            "site": study.sites.get(code="B").pk,
            "enrollment_date": "2025-04-02",
            "derived_from": subjects["b"].pk,
            "model_type": "PDX",
        },
    )
    assert response.status_code == 302
    model = Subject.objects.get(subject_id="B-0002")
    assert (model.kind, model.derived_from, model.model_type) == ("animal", subjects["b"], "PDX")


# ---------------------------------------------------------------------------- the enrolment date, asked once

REGISTRATION = {
    "elements.yaml": """
elements:
  - public_id: capture.test_enrolled
    version: "1.0"
    name: enrollment_date
    long_name: Test Enrolment Date
    question: Date of enrolment
    datatype: date
  - public_id: capture.test_consent
    version: "1.0"
    name: consented
    long_name: Test Consent
    question: Consent signed?
    datatype: boolean
""",
    "registration.yaml": """
form: registration
version: "1.0"
title: Registration
sections:
  - title: Registration
    items:
      - element: capture.test_consent@1.0
        required: true
      - element: capture.test_enrolled@1.0
        required: true
""",
    "schedule.yaml": """
schedule: registered
version: "1.0"
title: Registered study
arms:
  - name: patients
    title: Patients
    events:
      - name: screening
        title: Screening
        forms: [registration@1.0]
""",
}


@pytest.fixture
def registered(tmp_path, personas):
    """A study whose first form asks the enrolment date; the admin manages it, at site R."""
    for name, text in REGISTRATION.items():
        (tmp_path / name).write_text(text)
    load_definitions([tmp_path], actor=SYSTEM)
    study = services.create_study(
        actor=SYSTEM, slug="registered", name="Registered", schedule=Schedule.objects.get(name="registered")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="R", name="Site R")
    services.grant_role(actor=SYSTEM, study=study, user=personas["admin"], role="study_admin")
    return study, site


def test_the_enrol_page_does_not_ask_the_date_a_form_asks(client, personas, registered):
    study, site = registered
    client.force_login(personas["admin"])
    url = reverse("web:enroll", args=[study.slug])
    page = client.get(url).content.decode()
    assert 'name="enrollment_date"' not in page
    assert "The enrolment date is asked on the Registration form at Screening" in page
    response = client.post(url, {"kind": "patient", "site": site.pk})
    subject = Subject.objects.get(study=study)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "records:entry", args=["registered", subject.subject_id, "screening", "registration", 1]
    )


def test_the_subjects_enrolment_date_follows_the_form(personas, registered):
    study, site = registered
    admin = personas["admin"]
    subject = services.enroll_subject(
        actor=admin, study=study, site=site, enrollment_date=dt.date(2025, 5, 20)
    )
    save_record(
        actor=admin, subject=subject, event_name="screening", form_name="registration",
        values={"enrollment_date": "2025-05-02"},
    )  # fmt: skip
    assert Subject.objects.get(pk=subject.pk).enrollment_date == dt.date(2025, 5, 2)
    event = AuditEvent.objects.filter(study=study, action="subject.enrollment_date").get()
    assert (event.before, event.after) == (
        {"enrollment_date": "2025-05-20"},
        {"enrollment_date": "2025-05-02"},
    )
    assert (event.object_label, event.reason) == (subject.subject_id, "from Registration at Screening")
    save_record(
        actor=admin, subject=subject, event_name="screening", form_name="registration",
        values={"enrollment_date": "2025-05-03", "consented": "1"}, expected_version=1,
    )  # fmt: skip
    assert Subject.objects.get(pk=subject.pk).enrollment_date == dt.date(2025, 5, 3)


def test_a_study_whose_forms_do_not_ask_the_date_is_asked_it_on_the_enrol_page(client, personas, study):
    client.force_login(personas["admin"])
    page = client.get(reverse("web:enroll", args=[study.slug])).content.decode()
    assert 'name="enrollment_date"' in page and "The enrolment date is asked on" not in page


def test_an_import_of_the_form_moves_the_subjects_enrolment_date_too(personas, registered):
    """The bulk path (spreadsheet and REDCap imports) keeps the date in step as an entry does."""
    from django.http import QueryDict

    from capture.api.redcap.params import Params
    from capture.api.redcap.project import Project
    from capture.api.redcap.record_import import import_records

    study, site = registered
    admin = personas["admin"]
    subject = services.enroll_subject(
        actor=admin, study=study, site=site, enrollment_date=dt.date(2025, 5, 20)
    )
    data = f"record_id,consented,enrollment_date\n{subject.subject_id},1,2025-05-04\n"
    query = QueryDict(mutable=True)
    query.update({"content": "record", "format": "csv", "data": data})
    response = import_records(admin, study, Project(study), Params(query))
    assert response.status_code == 200, response.content
    assert Subject.objects.get(pk=subject.pk).enrollment_date == dt.date(2025, 5, 4)
    event = AuditEvent.objects.filter(study=study, action="subject.enrollment_date").get()
    assert (event.before, event.after) == (
        {"enrollment_date": "2025-05-20"},
        {"enrollment_date": "2025-05-04"},
    )
