"""The enrol page asks only what the kind of subject needs and says the id it will give."""

from __future__ import annotations

from django.urls import reverse

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
