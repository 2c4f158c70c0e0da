"""Who may do what, in one place. Every view, API endpoint, export and import asks here.

Rules:
- no `view_study_data` permission on the study: the study does not exist for the user (404);
- a subject at a site the user's membership does not cover does not exist for them (404);
- the study is visible but the action needs a permission the user lacks: 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from .models import STUDY_PERMISSIONS, Membership, Site, Study, Subject

VIEW = "view_study_data"


def _perm(codename: str) -> str:
    return f"studies.{codename}"


def can(user, codename: str, study: Study) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(_perm(codename), study)


def permissions(user, study: Study) -> frozenset[str]:
    """Every permission codename the user holds on the study, in one query (for pages that
    show or hide several actions; single decisions use `can`)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(code for code, _ in STUDY_PERMISSIONS)
    return frozenset(ObjectPermissionChecker(user).get_perms(study))


def studies_visible_to(user):
    if not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    return get_objects_for_user(user, _perm(VIEW), klass=Study, accept_global_perms=False)


def get_study(user, slug: str, codename: str = VIEW) -> Study:
    """The study, if the user may see it (else 404) and do `codename` on it (else 403)."""
    study = studies_visible_to(user).filter(slug=slug).first()
    if study is None:
        raise Http404("No such study.")
    if codename != VIEW and not can(user, codename, study):
        raise PermissionDenied(f"Your role in {study.name} does not allow this.")
    return study


def sites_visible_to(user, study: Study):
    """The sites whose subjects the user sees in this study."""
    if not can(user, VIEW, study):
        return Site.objects.none()
    if user.is_superuser:
        return study.sites.all()
    membership = Membership.objects.filter(user=user, study=study).first()
    if membership is None:
        return Site.objects.none()
    if membership.all_sites:
        return study.sites.all()
    return membership.sites.filter(study=study)


def subjects_visible_to(user, study: Study):
    return Subject.objects.filter(study=study, site__in=sites_visible_to(user, study))


def get_subject(user, study: Study, subject_id: str, codename: str = VIEW) -> Subject:
    """A subject of `study` the user may see (else 404) and do `codename` on (else 403)."""
    subject = (
        subjects_visible_to(user, study).filter(subject_id=subject_id).select_related("site", "arm").first()
    )
    if subject is None:
        raise Http404("No such subject.")
    if codename != VIEW and not can(user, codename, study):
        raise PermissionDenied(f"Your role in {study.name} does not allow this.")
    return subject


def may_act_at_site(user, codename: str, study: Study, site: Site) -> bool:
    return can(user, codename, study) and sites_visible_to(user, study).filter(pk=site.pk).exists()


def role_of(user, study: Study) -> str | None:
    membership = Membership.objects.filter(user=user, study=study).only("role").first()
    return membership.role if membership else None
