"""Who may do what, in one place. Every view, API endpoint, export and import asks here.

Rules:
- no `view_study_data` permission on the study: the study does not exist for the user (404);
- a subject at a site the user's membership does not cover does not exist for them (404);
- the study is visible but the action needs a permission the user lacks: 403.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from guardian.models import GroupObjectPermission, UserObjectPermission
from guardian.shortcuts import get_objects_for_user

from .models import STUDY_PERMISSIONS, Membership, Site, Study, Subject

VIEW = "view_study_data"


def _perm(codename: str) -> str:
    return f"studies.{codename}"


def can(user, codename: str, study: Study) -> bool:
    """True when the user holds `codename` on the study. Reads the same set as `permissions`
    (cached per request), so the two can never disagree."""
    return codename in permissions(user, study)


def permissions(user, study: Study) -> frozenset[str]:
    """Every permission codename the user holds on the study, in one query (for pages that
    show or hide several actions; single decisions use `can`). `codename in permissions(...)`
    answers as `can` does: the user's own object permissions and their groups', as guardian
    reads them (guardian asks in two queries; a UNION asks once)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(code for code, _ in STUDY_PERMISSIONS)
    return _cached(("perms", user.pk, study.pk), lambda: _read_permissions(user, study))


def _read_permissions(user, study: Study) -> frozenset[str]:
    ctype = ContentType.objects.get_for_model(Study)  # cached per process by Django
    pk = str(study.pk)
    with connection.cursor() as cursor:
        cursor.execute(_permissions_sql(connection.vendor), [user.pk, ctype.pk, pk, ctype.pk] * 2)
        return frozenset(code for (code,) in cursor.fetchall())


@cache
def _permissions_sql(vendor: str) -> str:
    """guardian's two reads of a user's object permissions (`ObjectPermissionChecker.get_perms`:
    their own, their groups'), as one statement. Written out because this runs on every request
    of the data-entry page and the ORM spends more time building the UNION than the database
    spends answering it; the table and column names come from the models. `vendor` keys the
    cache: quoting differs between databases."""
    q = connection.ops.quote_name
    perm, own, grp = Permission._meta, UserObjectPermission._meta, GroupObjectPermission._meta
    member = get_user_model()._meta.get_field("groups").remote_field.through._meta  # type: ignore[union-attr]  # a many-to-many has its through model

    def col(meta, name):
        return f"{q(meta.db_table)}.{q(meta.get_field(name).column)}"

    def read(meta, who: str, join: str) -> str:
        return (
            f"SELECT {col(perm, 'codename')} FROM {q(meta.db_table)} "  # noqa: S608 - names from the models; values are parameters
            f"INNER JOIN {q(perm.db_table)} ON {col(meta, 'permission')} = {q(perm.db_table)}.{q(perm.pk.column)}"  # type: ignore[arg-type]  # Permission has its pk column
            f"{join} WHERE {who} = %s AND {col(meta, 'content_type')} = %s AND {col(meta, 'object_pk')} = %s"
            f" AND {col(perm, 'content_type')} = %s"
        )

    groups = f" INNER JOIN {q(member.db_table)} ON {col(member, 'group')} = {col(grp, 'group')}"
    return read(own, col(own, "user"), "") + " UNION " + read(grp, col(member, "user"), groups)


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
    """`can` at a site the user sees (two queries: the permissions, the membership's sites;
    none when a request has read them already, see `request_cache`)."""
    perms = permissions(user, study)
    return codename in perms and VIEW in perms and _sees_site(user, study, site)


ALL_SITES = "all"


def _visible_site_ids(user, study: Study) -> frozenset[int] | str:
    """ALL_SITES, or the ids of the sites whose subjects the user sees (`sites_visible_to`
    for a user who holds VIEW), in one query."""

    def read():
        if user.is_superuser:
            return ALL_SITES
        rows = list(Membership.objects.filter(user=user, study=study).values_list("all_sites", "sites"))
        if any(all_sites for all_sites, _ in rows):
            return ALL_SITES
        return frozenset(site for _, site in rows if site is not None)

    return _cached(("sites", user.pk, study.pk), read)


def _sees_site(user, study: Study, site: Site) -> bool:
    """`site in sites_visible_to(user, study)` for a user who holds VIEW on the study."""
    if site.study_id != study.pk:
        return False
    visible = _visible_site_ids(user, study)
    return visible == ALL_SITES or site.pk in visible


# ---------------------------------------------------------------------------- per request

_request: ContextVar[dict | None] = ContextVar("capture_access_request_cache", default=None)


def request_cache(view):
    """A view decorator: within one request, `permissions` and the sites a user sees are read
    from the database once per user and study, whoever asks (the view, then the record service
    it calls). Decisions are the same; a grant or revocation made during the request shows
    from the next request on. Only for views that do not change memberships."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = _request.set({})
        try:
            return view(*args, **kwargs)
        finally:
            _request.reset(token)

    return wrapper


def _cached(key: tuple, read):
    memo = _request.get()
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]


@dataclass(frozen=True)
class StudyAccess:
    """One user's standing in one study, for a request that decides several things (the
    data-entry page: see it, enter data, raise queries, lock, sign). Each answer is the one
    `can`, `get_subject` and `may_act_at_site` give; the permissions are read once."""

    user: object
    study: Study
    perms: frozenset[str]

    def can(self, codename: str) -> bool:
        return codename in self.perms

    def require(self, codename: str) -> None:
        if codename not in self.perms:
            raise PermissionDenied(f"Your role in {self.study.name} does not allow this.")

    def get_subject(self, subject_id: str, codename: str = VIEW) -> Subject:
        """As `get_subject`: 404 for a subject at a site the user does not see, 403 without
        `codename`."""
        # (study, subject_id) is unique: no ORDER BY, whose Meta ordering would join the study.
        found = (
            Subject.objects.filter(study=self.study, subject_id=subject_id)
            .select_related("site", "arm")
            .order_by()[:1]
        )
        subject = next(iter(found), None)
        if subject is None or not _sees_site(self.user, self.study, subject.site):
            raise Http404("No such subject.")
        subject.study = self.study  # the same row; spares `subject.study` a query
        self.require(codename)
        return subject

    def may_act_at_site(self, codename: str, site: Site) -> bool:
        return codename in self.perms and _sees_site(self.user, self.study, site)


def study_access(user, slug: str, codename: str = VIEW) -> StudyAccess:
    """As `get_study` (404 unless the user may see the study, 403 without `codename`), with
    every permission the user holds on it, in two queries."""
    study = None
    if user.is_authenticated and user.is_active:
        study = next(iter(Study.objects.filter(slug=slug).order_by()[:1]), None)  # slug is unique
    perms = permissions(user, study) if study is not None else frozenset()
    if study is None or VIEW not in perms:
        raise Http404("No such study.")
    found = StudyAccess(user, study, perms)
    found.require(codename)
    return found


def role_of(user, study: Study) -> str | None:
    membership = Membership.objects.filter(user=user, study=study).only("role").first()
    return membership.role if membership else None


def require_api(user, study: Study, *, write: bool, today=None) -> None:
    """403 unless the member's API rights in the study allow this token request: `write` (an
    import, a change, a delete) needs `api_import`, a read needs `api_export`, and neither is
    allowed after `api_expires`. The role's permissions still decide the rest; a user with no
    membership (a superuser) has no API limits here."""
    import datetime as dt

    membership = (
        Membership.objects.filter(user=user, study=study)
        .only("api_export", "api_import", "api_expires")
        .first()
        if getattr(user, "pk", None)
        else None
    )
    if membership is None:
        return
    today = today or dt.date.today()  # noqa: DTZ011 - an expiry day, as the administrator typed it
    if membership.api_expires is not None and today > membership.api_expires:
        raise PermissionDenied(
            f"Your API rights in {study.name} ended on {membership.api_expires.isoformat()}; "
            "ask a study administrator to extend them."
        )
    if write and not membership.api_import:
        raise PermissionDenied(f"Your API rights in {study.name} do not include importing or changing data.")
    if not write and not membership.api_export:
        raise PermissionDenied(f"Your API rights in {study.name} do not include exporting data.")


# Designating a subject's target and non-target lesions at baseline (issue 17, capture/measurements/
# designation.py) is data entry on that subject: study administrators and data managers at every
# site, coordinators at theirs. Every role that sees the subject reads the designation page.
DESIGNATE_LESIONS = "enter_data"


def may_designate_lesions(user, subject: Subject) -> bool:
    return may_act_at_site(user, DESIGNATE_LESIONS, subject.study, subject.site)
