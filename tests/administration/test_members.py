"""Members and rights: who may add, change, suspend and remove members, and what is audited."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.studies import access, services
from capture.studies.models import Membership
from tests.conftest import PASSWORD


def _events(study, action):
    return list(AuditEvent.objects.filter(study=study, action=action).order_by("seq"))


def _membership(study, user):
    return Membership.objects.get(study=study, user=user)


def test_admin_adds_an_existing_user_with_a_site_and_it_is_audited(client, personas, study, make_user):
    newcomer = make_user("newcomer")
    client.force_login(personas["admin"])
    site_a = study.sites.get(code="A")
    response = client.post(
        reverse("administration:member_add", args=[study.slug]),
        {"username": "newcomer", "role": "coordinator", "sites": [site_a.pk], "api_export": "on"},
    )
    assert response.status_code == 302
    m = _membership(study, newcomer)
    assert (m.role, list(m.sites.values_list("code", flat=True))) == ("coordinator", ["A"])
    assert (m.api_export, m.api_import) == (True, False)
    grant = _events(study, "membership.grant")[-1]
    assert grant.actor == personas["admin"]
    assert grant.after == {"user": "newcomer", "role": "coordinator", "all_sites": False, "sites": ["A"]}
    rights = _events(study, "membership.api_rights")[-1]
    assert rights.after == {"api_export": True, "api_import": False, "api_expires": None}
    page = client.get(reverse("administration:members", args=[study.slug])).content.decode()
    assert "newcomer" in page and "Study coordinator" in page


def test_an_invitation_mails_a_one_time_link_that_sets_a_password(
    client, personas, study, django_capture_on_commit_callbacks
):
    client.force_login(personas["admin"])
    with django_capture_on_commit_callbacks(execute=True):  # the mail leaves after the commit
        response = client.post(
            reverse("administration:member_add", args=[study.slug]),
            {"email": "Rita@example.org", "role": "monitor", "api_export": "on", "api_import": "on"},
        )
    assert response.status_code == 302
    rita = get_user_model().objects.get(email="Rita@example.org")
    assert rita.username == "rita@example.org" and not rita.has_usable_password()
    assert _events(study, "membership.invite")[-1].after == {"email": "Rita@example.org"}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["Rita@example.org"]
    link = re.search(r"http://testserver(/accounts/invitation/\S+/)", mail.outbox[0].body).group(1)
    client.logout()
    form_url = client.get(link).url  # Django moves the token into the session, then asks for a password
    response = client.post(
        form_url, {"new_password1": "a-long-new-pass-42", "new_password2": "a-long-new-pass-42"}
    )
    assert response.status_code == 302 and response.url == reverse("login")
    rita.refresh_from_db()
    assert rita.check_password("a-long-new-pass-42")
    again = client.get(link, follow=True)
    assert "not valid" in again.content.decode()


def test_pi_and_monitor_read_the_members_page_without_the_forms(client, personas, study):
    for who in ("pi", "monitor"):
        client.force_login(personas[who])
        page = client.get(reverse("administration:members", args=[study.slug])).content.decode()
        assert "coordinator_a" in page
        assert "Add a member" not in page and "Change</a>" not in page
        response = client.post(
            reverse("administration:member_add", args=[study.slug]), {"username": "owner", "role": "pi"}
        )
        assert response.status_code == 403


def test_a_coordinator_may_not_see_the_members_and_an_outsider_is_told_nothing(client, personas, study):
    client.force_login(personas["coordinator_a"])
    assert client.get(reverse("administration:members", args=[study.slug])).status_code == 403
    client.force_login(personas["outsider"])
    assert client.get(reverse("administration:members", args=[study.slug])).status_code == 404


def test_a_membership_of_another_study_is_not_found_through_this_one(client, personas, study, other_study):
    outsider_membership = _membership(other_study, personas["outsider"])
    client.force_login(personas["admin"])
    url = reverse("administration:member", args=[study.slug, outsider_membership.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"do": "remove"}).status_code == 404
    assert Membership.objects.filter(pk=outsider_membership.pk).exists()


def test_changing_a_role_and_sites_is_audited_before_and_after(client, personas, study):
    coordinator = _membership(study, personas["coordinator_a"])
    client.force_login(personas["admin"])
    site_b = study.sites.get(code="B")
    response = client.post(
        reverse("administration:member", args=[study.slug, coordinator.pk]),
        {"do": "role", "role": "coordinator", "sites": [site_b.pk]},
    )
    assert response.status_code == 302
    event = _events(study, "membership.grant")[-1]
    assert event.before["sites"] == ["A"] and event.after["sites"] == ["B"]
    assert access.sites_visible_to(personas["coordinator_a"], study).get().code == "B"


def test_a_suspended_member_loses_the_study_and_gets_it_back_when_reinstated(client, personas, study):
    monitor = _membership(study, personas["monitor"])
    admin = personas["admin"]
    services.suspend_member(actor=admin, study=study, membership=monitor, reason="left the CRO")
    client.force_login(personas["monitor"])
    assert client.get(reverse("web:dashboard", args=[study.slug])).status_code == 404
    assert _events(study, "membership.suspend")[-1].reason == "left the CRO"
    services.reinstate_member(actor=admin, study=study, membership=monitor)
    assert client.get(reverse("web:dashboard", args=[study.slug])).status_code == 200
    assert access.permissions(personas["monitor"], study) == {"view_study_data", "verify_data", "view_audit"}


def test_a_suspended_member_given_a_new_role_stays_without_permissions(personas, study):
    monitor = _membership(study, personas["monitor"])
    services.suspend_member(actor=personas["admin"], study=study, membership=monitor)
    services.change_member(actor=personas["admin"], study=study, membership=monitor, role="pi")
    assert access.permissions(personas["monitor"], study) == frozenset()


def test_removing_a_member_keeps_their_history(client, personas, study):
    m = _membership(study, personas["statistician"])
    client.force_login(personas["admin"])
    response = client.post(reverse("administration:member", args=[study.slug, m.pk]), {"do": "remove"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=m.pk).exists()
    assert _events(study, "membership.revoke")[-1].before["user"] == "statistician"
    grants = [e for e in _events(study, "membership.grant") if e.object_id == str(m.pk)]
    assert [e.after["user"] for e in grants] == ["statistician"]  # the grant is still there


def test_the_last_administrator_cannot_be_removed_demoted_or_suspended(personas, study, make_user):
    admin = _membership(study, personas["admin"])
    owner = make_user("second")  # a superuser acts, so the refusal is the rule, not the actor's rights
    owner.is_superuser = True
    owner.save()
    with pytest.raises(ValidationError, match="last administrator"):
        services.remove_member(actor=owner, study=study, membership=admin)
    with pytest.raises(ValidationError, match="last administrator"):
        services.change_member(actor=owner, study=study, membership=admin, role="pi")
    with pytest.raises(ValidationError, match="last administrator"):
        services.suspend_member(actor=owner, study=study, membership=admin)
    assert _membership(study, personas["admin"]).role == "study_admin"


def test_an_administrator_cannot_lock_themselves_out_even_with_another_administrator(client, personas, study):
    services.grant_role(actor=personas["admin"], study=study, user=personas["pi"], role="study_admin")
    mine = _membership(study, personas["admin"])
    client.force_login(personas["admin"])
    url = reverse("administration:member", args=[study.slug, mine.pk])
    response = client.post(url, {"do": "remove"}, follow=True)
    assert "your own administration" in response.content.decode()
    assert Membership.objects.filter(pk=mine.pk).exists()
    # The other administrator may remove them: one administrator stays.
    services.remove_member(actor=personas["pi"], study=study, membership=mine)
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_api_rights_and_expiry_are_saved_and_audited(client, personas, study):
    m = _membership(study, personas["data_manager"])
    client.force_login(personas["admin"])
    response = client.post(
        reverse("administration:member", args=[study.slug, m.pk]),
        {"do": "api", "api_export": "on", "api_expires": "2026-12-31"},
    )
    assert response.status_code == 302
    m.refresh_from_db()
    assert (m.api_export, m.api_import, m.api_expires) == (True, False, dt.date(2026, 12, 31))
    event = _events(study, "membership.api_rights")[-1]
    assert event.before == {"api_export": True, "api_import": True, "api_expires": None}
    assert event.after == {"api_export": True, "api_import": False, "api_expires": "2026-12-31"}


def test_the_services_refuse_an_actor_who_may_not_manage(personas, study):
    m = _membership(study, personas["statistician"])
    with pytest.raises(PermissionDenied):
        services.remove_member(actor=personas["pi"], study=study, membership=m)
    with pytest.raises(TypeError):
        services.remove_member(actor=None, study=study, membership=m)


def test_the_role_table_shows_the_code_roles(client, personas, study):
    client.force_login(personas["pi"])
    page = client.get(reverse("administration:members", args=[study.slug])).content.decode()
    table = page[page.index('id="roles"') :]
    assert "Manage sites, members and settings" in table and "Monitor" in table
    assert PASSWORD not in page
