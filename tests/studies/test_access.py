"""Who sees and does what: roles, sites and studies, through the access module and the pages."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.studies import access, pseudonyms, services
from capture.studies.models import Subject
from tests.conftest import PASSWORD


def _client(client, user):
    client.force_login(user)
    return client


def test_coordinator_at_site_a_gets_404_for_a_site_b_subject(client, subjects, personas, study):
    _client(client, personas["coordinator_a"])
    url = reverse("web:subject", args=[study.slug, subjects["b"].subject_id])
    assert client.get(url).status_code == 404
    own = reverse("web:subject", args=[study.slug, subjects["a"].subject_id])
    assert client.get(own).status_code == 200


def test_coordinator_dashboard_lists_only_own_site_subjects(client, subjects, personas, study):
    _client(client, personas["coordinator_a"])
    page = client.get(reverse("web:dashboard", args=[study.slug])).content.decode()
    assert subjects["a"].subject_id in page
    assert subjects["b"].subject_id not in page


def test_user_of_another_study_gets_404_for_the_study_and_its_subjects(client, subjects, personas, study):
    _client(client, personas["outsider"])
    assert client.get(reverse("web:dashboard", args=[study.slug])).status_code == 404
    assert client.get(reverse("web:subject", args=[study.slug, subjects["a"].subject_id])).status_code == 404
    assert client.get(reverse("web:enroll", args=[study.slug])).status_code == 404
    listing = client.get(reverse("web:study_list")).content.decode()
    assert "Trial" not in listing and "Other" in listing


def test_anonymous_user_is_sent_to_log_in(client, subjects, study):
    response = client.get(reverse("web:dashboard", args=[study.slug]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize("persona", ["statistician", "monitor", "pi"])
def test_read_only_roles_get_403_on_enrolment(client, personas, study, persona):
    _client(client, personas[persona])
    assert client.get(reverse("web:enroll", args=[study.slug])).status_code == 403
    response = client.post(
        reverse("web:enroll", args=[study.slug]),
        {"site": 1, "kind": "patient", "enrollment_date": "2025-01-01"},
    )
    assert response.status_code == 403
    assert not Subject.objects.exists()


@pytest.mark.parametrize("persona", ["admin", "pi", "data_manager", "statistician", "monitor"])
def test_all_site_roles_see_every_site(personas, subjects, study, persona):
    visible = set(access.subjects_visible_to(personas[persona], study).values_list("subject_id", flat=True))
    assert visible == {s.subject_id for s in subjects.values()}


def test_role_permission_table(personas, study):
    expected = {
        "admin": {"enroll_subject", "enter_data", "manage_study", "export_identified", "view_identifiers"},
        "coordinator_a": {"enroll_subject", "enter_data", "view_identifiers"},
        "statistician": {"export_deidentified"},
        "monitor": {"verify_data", "view_audit"},
        "pi": {"sign_records", "export_identified", "view_audit"},
    }
    for persona, allowed in expected.items():
        for codename in allowed:
            assert access.can(personas[persona], codename, study), f"{persona} should {codename}"
    assert not access.can(personas["statistician"], "view_identifiers", study)
    assert not access.can(personas["statistician"], "export_identified", study)
    assert not access.can(personas["coordinator_a"], "import_data", study)
    assert not access.can(personas["monitor"], "enter_data", study)
    assert not access.can(personas["outsider"], "view_study_data", study)
    assert not access.can(personas["data_manager"], "sign_records", study)


def test_changing_a_role_replaces_its_permissions(personas, study):
    user = personas["data_manager"]
    services.grant_role(actor=SYSTEM, study=study, user=user, role="statistician")
    # guardian caches permissions per user object; a fresh object sees the change.
    fresh = type(user).objects.get(pk=user.pk)
    assert not access.can(fresh, "enter_data", study)
    assert access.can(fresh, "export_deidentified", study)


def test_enrolment_gives_pattern_ids_in_sequence_per_site(subjects, study, personas):
    assert subjects["a"].subject_id == "A-0001"
    assert subjects["b"].subject_id == "B-0001"
    assert subjects["model"].subject_id == "A-0002"
    assert subjects["model"].derived_from == subjects["a"]
    assert subjects["model"].arm.name == "models"
    assert -364 <= subjects["a"].date_shift_days <= 0
    assert subjects["a"].date_shift_days == pseudonyms.date_shift_days(study, "A-0001")


def test_coordinator_cannot_enrol_at_another_site(study, personas):
    site_b = study.sites.get(code="B")
    with pytest.raises(PermissionDenied):
        services.enroll_subject(
            actor=personas["coordinator_a"], study=study, site=site_b, enrollment_date=dt.date(2025, 1, 1)
        )
    assert not Subject.objects.exists()


def test_model_must_derive_from_a_patient_of_the_same_study(subjects, study, other_study, personas):
    site = study.sites.get(code="A")
    with pytest.raises(ValidationError, match="derived from a patient, not from another model"):
        services.enroll_subject(
            actor=personas["admin"],
            study=study,
            site=site,
            kind="animal",
            derived_from=subjects["model"],
            enrollment_date=dt.date(2025, 1, 1),
        )
    outsider_patient = services.enroll_subject(
        actor=SYSTEM, study=other_study, site=other_study.sites.get(), enrollment_date=dt.date(2025, 1, 1)
    )
    with pytest.raises(ValidationError, match="same study"):
        services.enroll_subject(
            actor=personas["admin"],
            study=study,
            site=site,
            kind="animal",
            derived_from=outsider_patient,
            enrollment_date=dt.date(2025, 1, 1),
        )


def test_enrolment_through_the_web(client, study, personas):
    _client(client, personas["coordinator_b"])
    site_b = study.sites.get(code="B")
    response = client.post(
        reverse("web:enroll", args=[study.slug]),
        {"site": site_b.pk, "kind": "patient", "enrollment_date": "2025-02-03"},
    )
    subject = Subject.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/subjects/{subject.subject_id}/")
    assert subject.site == site_b and subject.enrollment_date == dt.date(2025, 2, 3)


def test_web_enrolment_form_offers_only_the_users_sites(client, study, personas):
    _client(client, personas["coordinator_b"])
    site_a = study.sites.get(code="A")
    response = client.post(
        reverse("web:enroll", args=[study.slug]),
        {"site": site_a.pk, "kind": "patient", "enrollment_date": "2025-02-03"},
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Subject.objects.exists()


def test_subject_page_hides_models_at_sites_the_user_cannot_see(client, study, personas):
    sites = {s.code: s for s in study.sites.all()}
    patient = services.enroll_subject(
        actor=SYSTEM, study=study, site=sites["B"], enrollment_date=dt.date(2025, 1, 1)
    )
    services.enroll_subject(
        actor=SYSTEM,
        study=study,
        site=sites["A"],
        enrollment_date=dt.date(2025, 1, 2),
        kind="animal",
        derived_from=patient,
        model_type="PDX",
    )
    _client(client, personas["coordinator_b"])
    page = client.get(reverse("web:subject", args=[study.slug, patient.subject_id])).content.decode()
    assert "A-0001" not in page


def test_login_page_logs_in_and_locks_out_after_repeated_failures(client, personas):
    url = reverse("login")
    ok = client.post(url, {"username": "pi", "password": PASSWORD})
    assert ok.status_code == 302
    client.logout()
    for _ in range(5):
        client.post(url, {"username": "monitor", "password": "wrong"})
    locked = client.post(url, {"username": "monitor", "password": PASSWORD})
    assert locked.status_code == 429 and "locked" in locked.content.decode()
