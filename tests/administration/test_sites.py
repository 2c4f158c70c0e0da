"""Sites: open, rename, retire, and moving a subject between them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.studies import services
from capture.studies.models import Site


def _last(study, action):
    return AuditEvent.objects.filter(study=study, action=action).order_by("-seq").first()


def test_admin_opens_renames_and_retires_a_site_and_each_is_audited(client, personas, study):
    client.force_login(personas["admin"])
    response = client.post(
        reverse("administration:site_add", args=[study.slug]), {"code": "C", "name": "Site C"}
    )
    assert response.status_code == 302
    site = Site.objects.get(study=study, code="C")
    assert _last(study, "site.create").after == {"code": "C", "name": "Site C"}
    url = reverse("administration:site", args=[study.slug, site.pk])
    assert client.post(url, {"do": "rename", "name": "Clinic C"}).status_code == 302
    assert _last(study, "site.rename").before == {"name": "Site C"}
    assert _last(study, "site.rename").after == {"name": "Clinic C"}
    assert client.post(url, {"do": "retire", "reason": "closed"}).status_code == 302
    site.refresh_from_db()
    assert site.retired_at is not None and _last(study, "site.retire").reason == "closed"
    page = client.get(reverse("administration:sites", args=[study.slug])).content.decode()
    assert "Clinic C" in page and "retired" in page


def test_a_site_code_taken_in_any_case_is_refused(client, personas, study):
    client.force_login(personas["admin"])
    response = client.post(
        reverse("administration:site_add", args=[study.slug]), {"code": "a", "name": "Again"}
    )
    assert response.status_code == 200 and "has a site" in response.content.decode()
    assert study.sites.count() == 2


def test_a_retired_site_takes_no_new_members_or_moved_subjects(personas, study, subjects):
    admin = personas["admin"]
    site_b = study.sites.get(code="B")
    services.retire_site(actor=admin, study=study, site=site_b)
    with pytest.raises(ValidationError, match="retired"):
        services.move_subject(actor=admin, study=study, subject=subjects["a"], site=site_b, reason="x")
    with pytest.raises(ValidationError, match="retired"):
        services.enroll_subject(actor=admin, study=study, site=site_b, enrollment_date=dt.date(2025, 4, 1))
    with pytest.raises(ValidationError, match="retired"):
        services.change_member(
            actor=admin,
            study=study,
            membership=personas["coordinator_a"].memberships.get(study=study),
            role="coordinator",
            sites=[site_b],
        )


def test_monitor_reads_the_sites_but_may_not_open_one(client, personas, study):
    client.force_login(personas["monitor"])
    page = client.get(reverse("administration:sites", args=[study.slug])).content.decode()
    assert "Site A" in page and "Open a site" not in page
    assert (
        client.post(
            reverse("administration:site_add", args=[study.slug]), {"code": "Z", "name": "Z"}
        ).status_code
        == 403
    )


def test_moving_a_subject_needs_a_reason_and_the_old_sites_coordinator_loses_it(
    client, personas, study, subjects
):
    subject = subjects["a"]
    site_b = study.sites.get(code="B")
    client.force_login(personas["admin"])
    url = reverse("administration:move_subject", args=[study.slug, subject.subject_id])
    response = client.post(url, {"site": site_b.pk, "reason": "  "})
    assert response.status_code == 200
    subject.refresh_from_db()
    assert subject.site.code == "A"
    response = client.post(url, {"site": site_b.pk, "reason": "patient moved to Bristol"})
    assert response.status_code == 302
    subject.refresh_from_db()
    assert (subject.site.code, subject.subject_id, subject.seq) == ("B", "A-0001", 2)
    event = _last(study, "subject.move")
    assert (event.before, event.after, event.reason) == (
        {"site": "A"},
        {"site": "B"},
        "patient moved to Bristol",
    )
    subject_url = reverse("web:subject", args=[study.slug, "A-0001"])
    client.force_login(personas["coordinator_a"])
    assert client.get(subject_url).status_code == 404
    client.force_login(personas["coordinator_b"])
    assert client.get(subject_url).status_code == 200


def test_after_a_move_the_old_site_enrols_without_reusing_the_moved_subjects_id(personas, study, subjects):
    admin = personas["admin"]
    site_a, site_b = study.sites.get(code="A"), study.sites.get(code="B")
    # Site A has A-0001 (the patient) and A-0002 (the model); the model moves away.
    services.move_subject(actor=admin, study=study, subject=subjects["model"], site=site_b, reason="re-homed")
    new = services.enroll_subject(actor=admin, study=study, site=site_a, enrollment_date=dt.date(2025, 4, 1))
    assert new.subject_id == "A-0003"


def test_a_coordinator_may_not_move_a_subject(client, personas, study, subjects):
    client.force_login(personas["coordinator_a"])
    url = reverse("administration:move_subject", args=[study.slug, subjects["a"].subject_id])
    assert client.post(url, {"site": study.sites.get(code="B").pk, "reason": "x"}).status_code == 403
    client.force_login(personas["coordinator_b"])  # does not see site A's subject at all
    assert client.get(url).status_code == 404


def test_missing_data_codes_are_saved_audited_and_checked(client, personas, study):
    client.force_login(personas["admin"])
    url = reverse("administration:settings", args=[study.slug])
    response = client.post(url, {"codes": "NA = Not applicable\nREF = Refused"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.missing_codes == [
        {"code": "NA", "meaning": "Not applicable"},
        {"code": "REF", "meaning": "Refused"},
    ]
    event = _last(study, "study.missing_codes")
    assert event.after == {"missing_codes": study.missing_codes} and len(event.before["missing_codes"]) == 4
    response = client.post(url, {"codes": "NA = one\nNA = two"})
    assert response.status_code == 200 and "listed twice" in response.content.decode()
    client.force_login(personas["pi"])
    assert client.get(url).status_code == 403
