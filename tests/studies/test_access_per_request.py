"""The one-read-per-request access helpers answer exactly as the single decisions do."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.shortcuts import assign_perm

from capture.accounts.system import SYSTEM
from capture.studies import access, services
from capture.studies.models import STUDY_PERMISSIONS

CODENAMES = [code for code, _ in STUDY_PERMISSIONS]
EVERYONE = [
    "admin",
    "pi",
    "data_manager",
    "coordinator_a",
    "coordinator_b",
    "statistician",
    "monitor",
    "outsider",
]


@pytest.mark.parametrize("persona", EVERYONE)
def test_permissions_holds_exactly_what_can_allows(personas, study, persona):
    user = personas[persona]
    held = access.permissions(user, study)
    assert held == {code for code in CODENAMES if access.can(user, code, study)}


def test_permissions_include_those_granted_through_a_group(personas, study, make_user):
    user = make_user("grouped")
    group = Group.objects.create(name="readers")
    user.groups.add(group)
    assign_perm("studies.view_study_data", group, study)
    assert (
        access.permissions(user, study)
        == {"view_study_data"}
        == {code for code in CODENAMES if access.can(user, code, study)}
    )


def test_permissions_of_a_superuser_and_an_inactive_user(study, make_user):
    assert access.permissions(make_user("root", is_superuser=True), study) == set(CODENAMES)
    assert access.permissions(make_user("gone", is_active=False), study) == frozenset()


@pytest.mark.parametrize("persona", EVERYONE)
@pytest.mark.parametrize("codename", ["enter_data", "lock_records", "view_study_data"])
def test_may_act_at_site_follows_role_and_sites(personas, study, subjects, persona, codename):
    user = personas[persona]
    for subject in subjects.values():
        expected = access.can(user, codename, study) and (
            access.sites_visible_to(user, study).filter(pk=subject.site.pk).exists()
        )
        assert access.may_act_at_site(user, codename, study, subject.site) is expected


@pytest.mark.parametrize("persona", EVERYONE)
def test_study_access_sees_the_studies_and_subjects_get_study_and_get_subject_see(
    personas, study, subjects, persona
):
    user = personas[persona]
    try:
        expected_study = access.get_study(user, study.slug)
    except Http404:
        with pytest.raises(Http404):
            access.study_access(user, study.slug)
        return
    found = access.study_access(user, study.slug)
    assert found.study == expected_study
    for subject in subjects.values():
        try:
            expected = access.get_subject(user, study, subject.subject_id)
        except Http404:
            with pytest.raises(Http404):
                found.get_subject(subject.subject_id)
        else:
            assert found.get_subject(subject.subject_id) == expected


def test_study_access_refuses_an_action_the_role_lacks_with_403(personas, study, subjects):
    with pytest.raises(PermissionDenied):
        access.study_access(personas["statistician"], study.slug, "enter_data")
    found = access.study_access(personas["statistician"], study.slug)
    with pytest.raises(PermissionDenied):
        found.get_subject(subjects["a"].subject_id, "enter_data")


def test_subject_of_another_study_is_not_found_through_this_study(personas, study, other_study):
    found = access.study_access(personas["admin"], study.slug)
    with pytest.raises(Http404):
        found.get_subject("no-such-subject")


def test_request_cache_reads_permissions_once_per_request_and_afresh_on_the_next(
    personas, study, subjects, django_assert_num_queries
):
    user, site = personas["coordinator_a"], subjects["a"].site

    @access.request_cache
    def request():
        return [access.may_act_at_site(user, "enter_data", study, site) for _ in range(3)]

    with django_assert_num_queries(2):  # the permissions, the membership's sites
        assert request() == [True, True, True]
    services.revoke_role(actor=SYSTEM, study=study, user=user)
    assert request() == [False, False, False]  # the next request reads the revocation
    assert access.may_act_at_site(user, "enter_data", study, site) is False
