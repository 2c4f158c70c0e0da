"""Workflows on studies: create a study, add sites, grant roles, enrol subjects.

Each function runs in one transaction, checks its actor's permission and its preconditions,
writes, and records the audit event in the same transaction. Staff (and the system actor) create
studies; staff or the study's managers add sites and grant roles (the admin is staff's tool).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from capture.accounts.system import require_actor
from capture.audit.services import NewEvent, append_events, canonical_json, record_event
from capture.dbcopy import insert_rows
from capture.definitions.models import Arm, EventForm, Schedule

from . import access, pseudonyms
from .models import STUDY_PERMISSIONS, Membership, Site, Study, Subject, validate_id_pattern
from .roles import ROLES


def may_create_studies(user) -> bool:
    """Staff and the system actor create studies and load definitions into the registry."""
    return bool(user and user.is_authenticated and user.is_active and (user.is_superuser or user.is_staff))


def _require_manager(actor, study: Study) -> None:
    if not (may_create_studies(require_actor(actor)) or access.can(actor, "manage_study", study)):
        raise PermissionDenied(f"Your role in {study.name} does not allow managing its sites and roles.")
    require_writable(study, "change its sites, members or settings")


class StudyNotWritableError(ValidationError):
    """A write the study's status refuses (see `require_writable`)."""


def require_writable(study: Study, what: str, *, definitions: bool = False) -> None:
    """The one rule of a study's status, asked by every write path before it writes.

    - development: everything is allowed, definitions included;
    - production: data is entered as usual; definitions change only through new versions (the
      definitions page's "Update definitions from a file", capture/definitions/services.py), so a
      direct edit of the definitions (`definitions=True`: REDCap's importMetadata, arms, events,
      instrument mapping) is refused in REDCap's words;
    - closed: nothing is written (records, imports, APIs, enrolment, sites, members, settings);
      only `set_study_status` reopens it.
    `what` says what was refused, as a verb phrase ("save data", "import metadata")."""
    if study.status == Study.CLOSED:
        raise StudyNotWritableError(
            f"{study.name} is closed (read-only), so you cannot {what}. Fix: a study administrator "
            "can reopen it on the study's Settings page (Study status).",
            code="closed",
        )
    if definitions and study.status == Study.PRODUCTION:
        # REDCap's own wording for these API methods in production (PyCap and REDCapR show it as is).
        raise StudyNotWritableError(
            f"You cannot {what} because the project is in production. This method is available only "
            "for projects in Development status; in Capture a study in production changes its "
            "definitions through new versions (Update definitions from a file).",
            code="production",
        )


def _study_snapshot(study: Study) -> dict:
    return {
        "slug": study.slug,
        "name": study.name,
        "schedule": study.schedule.ref,
        "subject_id_pattern": study.subject_id_pattern,
        "subject_ids": study.subject_ids,
        "record_id_field": study.record_id_field,
        "missing_codes": study.missing_codes,
        "status": study.status,
    }


@transaction.atomic
def create_study(
    *,
    actor,
    slug: str,
    name: str,
    schedule: Schedule,
    subject_id_pattern: str = "{site}-{seq:04d}",
    description: str = "",
    subject_ids: str = Study.PATTERN_IDS,
    record_id_field: str = "record_id",
    administrator=None,
) -> Study:
    """A new study in development status. `administrator` (the person who created it on the web)
    becomes its first study administrator, so its sites and members are set up in Capture's own
    pages, not Django admin."""
    if not may_create_studies(require_actor(actor)):
        raise PermissionDenied("Only staff may create studies. Ask an administrator to make you staff.")
    validate_id_pattern(subject_id_pattern)
    if subject_ids not in dict(Study.ID_POLICIES):
        raise ValidationError(f"Unknown subject id policy {subject_ids!r}; use 'pattern' or 'source'.")
    if Study.objects.filter(slug=slug).exists():
        raise ValidationError(f"A study with the short name {slug!r} exists already; choose another.")
    study = Study.objects.create(
        slug=slug,
        name=name,
        schedule=schedule,
        description=description,
        subject_id_pattern=subject_id_pattern,
        subject_ids=subject_ids,
        record_id_field=record_id_field,
    )
    record_event(
        actor=actor,
        study=study,
        action="study.create",
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        after=_study_snapshot(study),
    )
    if administrator is not None:
        grant_role(actor=actor, study=study, user=administrator, role=ADMIN_ROLE)
    return study


@transaction.atomic
def add_site(*, actor, study: Study, code: str, name: str) -> Site:
    _require_manager(actor, study)
    site = Site(study=study, code=code, name=name)
    site.full_clean()
    site.save()
    record_event(
        actor=actor,
        study=study,
        action="site.create",
        object_type="site",
        object_id=site.pk,
        object_label=str(site),
        after={"code": code, "name": name},
    )
    return site


@transaction.atomic
def grant_role(*, actor, study: Study, user, role: str, sites: list[Site] | None = None) -> Membership:
    """Give `user` exactly the permissions of `role` on `study`, limited to `sites`
    unless the role sees all sites. Replaces any earlier role."""
    _require_manager(actor, study)
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    bundle = ROLES[role]
    sites = list(sites or [])
    if any(site.study_id != study.pk for site in sites):
        raise ValidationError("Every site must belong to the study.")
    if not bundle.all_sites and not sites:
        raise ValidationError(f"A {bundle.title.lower()} works at named sites; choose at least one.")
    membership = Membership.objects.filter(user=user, study=study).first()
    before = _membership_snapshot(membership) if membership else None
    if membership is None:
        membership = Membership(user=user, study=study)
    membership.role = role
    membership.all_sites = bundle.all_sites
    membership.save()
    membership.sites.set(sites)
    for codename, _ in STUDY_PERMISSIONS:
        if codename in bundle.permissions:
            assign_perm(f"studies.{codename}", user, study)
        else:
            remove_perm(f"studies.{codename}", user, study)
    record_event(
        actor=actor,
        study=study,
        action="membership.grant",
        object_type="membership",
        object_id=membership.pk,
        object_label=f"{user.get_username()} as {bundle.title}",
        before=before,
        after=_membership_snapshot(membership),
    )
    return membership


@transaction.atomic
def revoke_role(*, actor, study: Study, user) -> None:
    _require_manager(actor, study)
    membership = Membership.objects.filter(user=user, study=study).first()
    if membership is None:
        return
    before = _membership_snapshot(membership)
    for codename, _ in STUDY_PERMISSIONS:
        remove_perm(f"studies.{codename}", user, study)
    record_event(
        actor=actor,
        study=study,
        action="membership.revoke",
        object_type="membership",
        object_id=membership.pk,
        object_label=user.get_username(),
        before=before,
    )
    membership.delete()


def _membership_snapshot(membership: Membership) -> dict:
    return {
        "user": membership.user.get_username(),
        "role": membership.role,
        "all_sites": membership.all_sites,
        "sites": sorted(membership.sites.values_list("code", flat=True)),
    }


@dataclasses.dataclass(frozen=True)
class EnrolRequest:
    """One subject for `enroll_subjects`: its site, enrolment date, kind, arm (None: the kind's
    first arm), lineage, and its id when the study keeps its source's ids (None: the pattern's)."""

    site: Site
    enrollment_date: dt.date
    kind: str = Subject.PATIENT
    arm: Arm | None = None
    derived_from: Subject | None = None
    model_type: str = ""
    subject_id: str | None = None


def _subject_snapshot(subject: Subject) -> dict:
    return {
        "subject_id": subject.subject_id,
        "site": subject.site.code,
        "arm": subject.arm.name,
        "kind": subject.kind,
        "derived_from": subject.derived_from.subject_id if subject.derived_from else None,
        "model_type": subject.model_type,
        "enrollment_date": subject.enrollment_date.isoformat(),
    }


def _check_id_text(study: Study, subject_id: str) -> None:
    """A given id's form (the study must keep source ids); whether it is taken is checked apart."""
    if not study.keeps_source_ids:
        raise ValidationError(
            f"{study.name} generates subject ids from its pattern; an id cannot be given. Fix: enrol without "
            "an id, or create the study with ids kept as the source gives them."
        )
    max_length = Subject._meta.get_field("subject_id").max_length or 0
    if not subject_id.strip() or subject_id != subject_id.strip() or len(subject_id) > max_length:
        raise ValidationError(
            f"Subject id {subject_id!r} must be 1 to {max_length} characters without surrounding spaces."
        )


def _enrolment_arm(study: Study, site: Site, kind: str, arm: Arm | None) -> Arm:
    """The arm a new subject of `kind` at `site` joins: `arm` checked, or the kind's first arm."""
    if site.study_id != study.pk:
        raise ValidationError("The site does not belong to this study.")
    if kind not in dict(Subject.KINDS):
        raise ValidationError(f"Unknown subject kind {kind!r}.")
    arms = study.schedule.arms.filter(subject_kind=kind)
    if arm is None:
        arm = arms.first()
        if arm is None:
            raise ValidationError(f"The study's schedule has no arm for {kind} subjects.")
    elif not arms.filter(pk=arm.pk).exists():
        raise ValidationError(f"Arm {arm.name!r} is not an arm of this study for {kind} subjects.")
    return arm


def _check_lineage(study: Study, kind: str, derived_from: Subject | None, model_type: str) -> None:
    """An animal model may derive from a patient of the same study; nothing else derives."""
    if derived_from is not None:
        if kind != Subject.ANIMAL:
            raise ValidationError("Only an animal model can be derived from another subject.")
        if derived_from.study.pk != study.pk:
            raise ValidationError("A model must be derived from a patient of the same study.")
        if derived_from.kind != Subject.PATIENT:
            raise ValidationError("A model is derived from a patient, not from another model.")
    elif model_type and kind != Subject.ANIMAL:
        raise ValidationError("Only animal subjects have a model type.")


@transaction.atomic
def enroll_subject(
    *,
    actor,
    study: Study,
    site: Site,
    enrollment_date: dt.date,
    kind: str = Subject.PATIENT,
    arm: Arm | None = None,
    derived_from: Subject | None = None,
    model_type: str = "",
    reason: str = "",
    subject_id: str | None = None,
) -> Subject:
    """Enrol a subject at `site`, giving it the next study id of the study's pattern, or `subject_id`
    as given when the study keeps its source's ids (Study.subject_ids == "source"): `enroll_subjects`
    of one, so one subject and many follow the same rules."""
    request = EnrolRequest(site, enrollment_date, kind, arm, derived_from, model_type, subject_id)
    return enroll_subjects(actor=actor, study=study, requests=[request], reason=reason)[0]


# The most ids one query looks up (SQLite's default limit on a statement's parameters is 999).
_ID_QUERY = 900


def _ids_taken(study: Study, subject_ids, *, exclude_site: Site | None = None) -> set[str]:
    """Which of `subject_ids` the study's subjects have (those at `exclude_site` left out)."""
    wanted, taken = list(subject_ids), set[str]()
    for at in range(0, len(wanted), _ID_QUERY):
        found = Subject.objects.filter(study=study, subject_id__in=wanted[at : at + _ID_QUERY])
        if exclude_site is not None:
            found = found.exclude(site=exclude_site)
        taken.update(found.values_list("subject_id", flat=True))
    return taken


def _site_sequence(study: Study, site: Site, count: int, elsewhere: set[str]) -> Iterator[tuple[int, str]]:
    """The sequence numbers and pattern ids of the next subjects enrolled at `site`, in turn:
    `next_subject_id`'s rule (one more than the site's last number, past ids a subject moved
    away keeps), with `elsewhere` (ids this batch gives at other sites) counted as taken. The
    ids another site holds are read a window at a time, not one query per subject."""
    pattern = study.subject_id_pattern
    seq = Subject.objects.filter(site=site).order_by("-seq").values_list("seq", flat=True).first() or 0
    skips = "{site" in pattern  # only a site's own ids can be skipped past
    taken: set[str] = set()
    checked = seq
    for _ in range(count):
        seq += 1
        while skips:
            if seq > checked:
                window = range(seq, seq + count + 16)
                names = [pattern.format(site=site.code, seq=n, study=study.slug) for n in window]
                taken = _ids_taken(study, names, exclude_site=site) | (elsewhere & set(names))
                checked = window[-1]
            if pattern.format(site=site.code, seq=seq, study=study.slug) not in taken:
                break
            seq += 1
        yield seq, pattern.format(site=site.code, seq=seq, study=study.slug)


def _site_numbers(site: Site) -> Iterator[tuple[int, str]]:
    """The sequence numbers after the site's last, with no pattern id (every id of the batch is given)."""
    seq = Subject.objects.filter(site=site).order_by("-seq").values_list("seq", flat=True).first() or 0
    while True:
        seq += 1
        yield seq, ""


def _checked_batch(
    user, study: Study, requests: list[EnrolRequest]
) -> tuple[dict[int, Site], dict[tuple, Arm]]:
    """The batch's sites (locked, none retired, each one the actor may enrol at) and the arm of each
    (site's study, kind, arm) the requests name; refuses a lineage or a future date."""
    sites: dict[int, Site] = {}
    for request in requests:
        sites.setdefault(request.site.pk, request.site)
    for site in sites.values():
        if not access.may_act_at_site(user, "enroll_subject", study, site):
            raise PermissionDenied(f"You may not enrol subjects at site {site.code}.")
    arms: dict[tuple, Arm] = {}
    latest = dt.date.today() + dt.timedelta(days=1)  # noqa: DTZ011 - a calendar date, local to the site
    for request in requests:
        key = (request.site.study_id, request.kind, request.arm.pk if request.arm else None)
        if key not in arms:
            arms[key] = _enrolment_arm(study, request.site, request.kind, request.arm)
        _check_lineage(study, request.kind, request.derived_from, request.model_type)
        if request.enrollment_date > latest:
            raise ValidationError("The enrolment date is in the future.")

    # Lock the site rows: concurrent enrolments at one site must get distinct sequence numbers.
    locked = {s.pk: s for s in Site.objects.select_for_update().filter(pk__in=list(sites)).order_by("pk")}
    for site in sites.values():
        if locked[site.pk].retired_at is not None:
            raise ValidationError(f"Site {site.code} is retired: it takes no new subjects.")
    return sites, arms


def _batch_ids(study: Study, requests: list[EnrolRequest], sites: dict[int, Site]) -> tuple[list, list[str]]:
    """(request, seq, generated id) per request and the id each subject gets: a given id checked and
    free, or the site's next pattern id; no id twice in the batch or the study."""
    given = [request.subject_id for request in requests if request.subject_id is not None]
    for subject_id in given:
        _check_id_text(study, subject_id)
    if len(given) == len(requests):
        # Every id given (a migration keeps its source's): sequence numbers only, one after the
        # site's last; no pattern id is made, so none need be checked against the others.
        sequences = {pk: _site_numbers(site) for pk, site in sites.items()}
    else:
        sequences = {
            pk: _site_sequence(
                study,
                site,
                sum(1 for r in requests if r.site.pk == pk),
                {r.subject_id for r in requests if r.subject_id is not None and r.site.pk != pk},
            )
            for pk, site in sites.items()
        }
    numbered = [(request, *next(sequences[request.site.pk])) for request in requests]
    ids = [request.subject_id or generated for request, _, generated in numbered]
    taken = _ids_taken(study, ids)
    seen: set[str] = set()
    for request, subject_id in zip(requests, ids, strict=True):
        if request.subject_id is not None and (subject_id in taken or subject_id in seen):
            raise ValidationError(f"Subject {subject_id!r} exists already in {study.name}.")
        if subject_id in taken or subject_id in seen:
            raise ValidationError(
                f"The subject id pattern gives {subject_id!r}, which is taken; the pattern must include "
                "{site} when a study has several sites."
            )
        seen.add(subject_id)
    return numbered, ids


@transaction.atomic
def enroll_subjects(*, actor, study: Study, requests: list[EnrolRequest], reason: str = "") -> list[Subject]:
    """Enrol the subjects of `requests` (in order), all or none, under enroll_subject's rules:
    the actor may enrol at each site (checked once a site), no site is retired, arms and lineage
    fit the subjects' kinds, no date is in the future, given ids are well formed and free (one
    query for the batch) and pattern ids follow each site's sequence under the site's row lock.
    One `subject.enroll` audit event per subject, appended in one batch; rows by bulk_create."""
    user = require_actor(actor)
    require_writable(study, "enrol subjects")
    requests = list(requests)
    sites, arms = _checked_batch(user, study, requests)
    numbered, ids = _batch_ids(study, requests, sites)

    subjects = [
        Subject(
            study=study,
            site=request.site,
            arm=arms[(request.site.study_id, request.kind, request.arm.pk if request.arm else None)],
            subject_id=subject_id,
            seq=seq,
            kind=request.kind,
            derived_from=request.derived_from,
            model_type=request.model_type,
            enrollment_date=request.enrollment_date,
            date_shift_days=shift,
        )
        for (request, seq, _), subject_id, shift in zip(
            numbered, ids, pseudonyms.date_shifts(study, ids), strict=True
        )
    ]
    _insert_subjects(study, subjects)
    append_events(
        actor=actor,
        study=study,
        reason=reason,
        events=[
            NewEvent(
                "subject.enroll",
                "subject",
                str(subject.pk),
                subject.subject_id,
                None,
                canonical_json(_subject_snapshot(subject), plain=True),  # text and None only
            )
            for subject in subjects
        ],
    )
    return subjects


_SUBJECT_COLUMNS = [
    "study",
    "site",
    "arm",
    "subject_id",
    "seq",
    "kind",
    "derived_from",
    "model_type",
    "enrollment_date",
    "date_shift_days",
    "created_at",
]


def _insert_subjects(study: Study, subjects: list[Subject]) -> None:
    """Insert new subjects and give each its primary key: bulk_create's rows (created now) without
    its per-object cost (an import enrols thousands), the keys read back by the unique study id."""
    now = timezone.now()
    created = Subject._meta.get_field("created_at").get_db_prep_save(now, connection)
    day = Subject._meta.get_field("enrollment_date")
    days: dict[dt.date, Any] = {}  # each enrolment date as the database takes it, adapted once
    for subject in subjects:
        subject.created_at = now
        if subject.enrollment_date not in days:
            days[subject.enrollment_date] = day.get_db_prep_save(subject.enrollment_date, connection)
    rows = (  # the values of _SUBJECT_COLUMNS, in order
        (
            s.study_id,
            s.site_id,
            s.arm_id,
            s.subject_id,
            s.seq,
            s.kind,
            s.derived_from_id,
            s.model_type,
            days[s.enrollment_date],
            s.date_shift_days,
            created,
        )
        for s in subjects
    )
    insert_rows(Subject, _SUBJECT_COLUMNS, rows)
    # The batch's rows are the study's subjects created at this very instant (one query, no list of
    # ids to send); should any be missing, by their ids.
    pks: dict[str, int] = dict(
        Subject.objects.filter(study=study, created_at=now).values_list("subject_id", "pk")
    )
    wanted = [subject.subject_id for subject in subjects if subject.subject_id not in pks]
    for at in range(0, len(wanted), _ID_QUERY):
        chunk = wanted[at : at + _ID_QUERY]
        pks.update(Subject.objects.filter(study=study, subject_id__in=chunk).values_list("subject_id", "pk"))
    for subject in subjects:
        subject.pk = pks[subject.subject_id]
        subject._state.adding, subject._state.db = False, connection.alias


# ---------------------------------------------------------------------------- administration
# The study administrator's workflows (capture/administration pages). Each checks that the actor
# may manage the study, keeps at least one active administrator, and audits in its transaction.

ADMIN_ROLE = "study_admin"


def _require_manage(actor, study: Study, *, what: str = "change its sites, members or settings") -> None:
    require_actor(actor)
    if not access.can(actor, "manage_study", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow managing it.")
    require_writable(study, what)


def _active_admins(study: Study):
    return Membership.objects.filter(study=study, role=ADMIN_ROLE, suspended_at__isnull=True)


def _keep_an_administrator(actor, membership: Membership, *, stays_admin: bool) -> None:
    """Refuse a change that would leave the study with no active administrator, or take the
    acting administrator's own administration away (they would lock themselves out)."""
    if stays_admin or membership.role != ADMIN_ROLE or membership.suspended_at is not None:
        return
    if getattr(actor, "pk", None) == membership.user_id:
        raise ValidationError(
            "You cannot take away your own administration of the study; ask another administrator."
        )
    if not _active_admins(membership.study).exclude(pk=membership.pk).exists():
        raise ValidationError(
            "This is the study's last administrator: make another member an administrator first."
        )


def _api_snapshot(membership: Membership) -> dict:
    return {
        "api_export": membership.api_export,
        "api_import": membership.api_import,
        "api_expires": membership.api_expires.isoformat() if membership.api_expires else None,
    }


def _open_sites(study: Study, sites) -> list[Site]:
    sites = list(sites or [])
    if any(site.study_id != study.pk for site in sites):
        raise ValidationError("Every site must belong to the study.")
    # Read from the database: the caller's Site objects may be older than a retirement.
    retired = sorted(
        Site.objects.filter(pk__in=[s.pk for s in sites], retired_at__isnull=False).values_list(
            "code", flat=True
        )
    )
    if retired:
        raise ValidationError(f"Site {', '.join(retired)} is retired; choose an open site.")
    return sites


@transaction.atomic
def add_member(
    *,
    actor,
    study: Study,
    user,
    role: str,
    sites=None,
    api_export: bool = True,
    api_import: bool = True,
    api_expires: dt.date | None = None,
) -> Membership:
    """Give a user who has no role in the study yet a role, sites and API rights."""
    _require_manage(actor, study)
    if Membership.objects.filter(study=study, user=user).exists():
        raise ValidationError(f"{user.get_username()} is a member already; change their role instead.")
    membership = grant_role(actor=actor, study=study, user=user, role=role, sites=_open_sites(study, sites))
    if (api_export, api_import, api_expires) != (True, True, None):
        set_api_rights(
            actor=actor,
            study=study,
            membership=membership,
            export=api_export,
            import_=api_import,
            expires=api_expires,
        )
    return membership


@transaction.atomic
def change_member(*, actor, study: Study, membership: Membership, role: str, sites=None) -> Membership:
    """A member's new role and sites (a suspended member stays suspended: no permission is given)."""
    _require_manage(actor, study)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, study=study)
    _keep_an_administrator(actor, membership, stays_admin=role == ADMIN_ROLE)
    suspended = membership.suspended_at is not None
    changed = grant_role(
        actor=actor, study=study, user=membership.user, role=role, sites=_open_sites(study, sites)
    )
    if suspended:
        for codename, _ in STUDY_PERMISSIONS:
            remove_perm(f"studies.{codename}", membership.user, study)
    return changed


@transaction.atomic
def suspend_member(*, actor, study: Study, membership: Membership, reason: str = "") -> Membership:
    """Withdraw every permission, keep the membership and its history; `reinstate_member` undoes it."""
    _require_manage(actor, study)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, study=study)
    if membership.suspended_at is not None:
        return membership
    _keep_an_administrator(actor, membership, stays_admin=False)
    for codename, _ in STUDY_PERMISSIONS:
        remove_perm(f"studies.{codename}", membership.user, study)
    membership.suspended_at = timezone.now()
    membership.save(update_fields=["suspended_at"])
    record_event(
        actor=actor,
        study=study,
        action="membership.suspend",
        object_type="membership",
        object_id=membership.pk,
        object_label=membership.user.get_username(),
        before={"suspended": False},
        after={"suspended": True},
        reason=reason,
    )
    return membership


@transaction.atomic
def reinstate_member(*, actor, study: Study, membership: Membership) -> Membership:
    _require_manage(actor, study)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, study=study)
    if membership.suspended_at is None:
        return membership
    for codename in ROLES[membership.role].permissions:
        assign_perm(f"studies.{codename}", membership.user, study)
    membership.suspended_at = None
    membership.save(update_fields=["suspended_at"])
    record_event(
        actor=actor,
        study=study,
        action="membership.reinstate",
        object_type="membership",
        object_id=membership.pk,
        object_label=membership.user.get_username(),
        before={"suspended": True},
        after={"suspended": False},
    )
    return membership


@transaction.atomic
def remove_member(*, actor, study: Study, membership: Membership) -> None:
    """End a membership. The user and every audit event naming them stay."""
    _require_manage(actor, study)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, study=study)
    _keep_an_administrator(actor, membership, stays_admin=False)
    revoke_role(actor=actor, study=study, user=membership.user)


@transaction.atomic
def set_api_rights(
    *, actor, study: Study, membership: Membership, export: bool, import_: bool, expires: dt.date | None
) -> Membership:
    """What the member's API tokens may do in the study (within their role), and until when."""
    _require_manage(actor, study)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, study=study)
    before = _api_snapshot(membership)
    membership.api_export, membership.api_import, membership.api_expires = export, import_, expires
    after = _api_snapshot(membership)
    if before == after:
        return membership
    membership.save(update_fields=["api_export", "api_import", "api_expires"])
    record_event(
        actor=actor,
        study=study,
        action="membership.api_rights",
        object_type="membership",
        object_id=membership.pk,
        object_label=membership.user.get_username(),
        before=before,
        after=after,
    )
    return membership


@transaction.atomic
def open_site(*, actor, study: Study, code: str, name: str) -> Site:
    """A new site (a REDCap data access group: its code is the DAG's unique name)."""
    _require_manage(actor, study)
    if Site.objects.filter(study=study, code__iexact=code).exists():
        raise ValidationError(f"The study has a site {code!r} already; choose another code.")
    return add_site(actor=actor, study=study, code=code, name=name)


@transaction.atomic
def rename_site(*, actor, study: Study, site: Site, name: str) -> Site:
    """A site's new name; its code (part of subject ids, a REDCap DAG's unique name) stays."""
    _require_manage(actor, study)
    site = Site.objects.select_for_update().get(pk=site.pk, study=study)
    name = name.strip()
    if not name:
        raise ValidationError("A site needs a name.")
    if name == site.name:
        return site
    before = {"name": site.name}
    site.name = name
    site.save(update_fields=["name"])
    record_event(
        actor=actor,
        study=study,
        action="site.rename",
        object_type="site",
        object_id=site.pk,
        object_label=str(site),
        before=before,
        after={"name": name},
    )
    return site


@transaction.atomic
def retire_site(*, actor, study: Study, site: Site, reason: str = "") -> Site:
    """Close a site to new subjects and members; its subjects, records and history stay."""
    _require_manage(actor, study)
    site = Site.objects.select_for_update().get(pk=site.pk, study=study)
    if site.retired_at is not None:
        return site
    site.retired_at = timezone.now()
    site.save(update_fields=["retired_at"])
    record_event(
        actor=actor,
        study=study,
        action="site.retire",
        object_type="site",
        object_id=site.pk,
        object_label=str(site),
        before={"retired": False},
        after={"retired": True},
        reason=reason,
    )
    return site


@transaction.atomic
def move_subject(*, actor, study: Study, subject: Subject, site: Site, reason: str) -> Subject:
    """Move a subject to another site of the study. Its id stays (ids are never reused); it takes
    the next sequence number of the new site. Members limited to the old site no longer see it."""
    _require_manage(actor, study, what="move a subject")
    reason = reason.strip()
    if not reason:
        raise ValidationError("Moving a subject needs a reason (it goes into the audit trail).")
    (site,) = _open_sites(study, [site])
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk, study=study)
    if subject.site_id == site.pk:
        raise ValidationError(f"{subject.subject_id} is at site {site.code} already.")
    Site.objects.select_for_update().get(pk=site.pk)  # as enrolment does: one sequence at a time
    last = Subject.objects.filter(site=site).order_by("-seq").values_list("seq", flat=True).first() or 0
    old = subject.site
    subject.site, subject.seq = site, last + 1
    subject.save(update_fields=["site", "seq"])
    record_event(
        actor=actor,
        study=study,
        action="subject.move",
        object_type="subject",
        object_id=subject.pk,
        object_label=subject.subject_id,
        before={"site": old.code},
        after={"site": site.code},
        reason=reason,
    )
    return subject


def _locked_study(study: Study) -> Study:
    """The study's row, locked for the rest of the transaction: a setting's `before` is read from it,
    so two changes at once are audited one after the other."""
    return Study.objects.select_for_update().get(pk=study.pk)


def _change_study_setting(
    actor, study: Study, action: str, *, before: dict, after: dict, reason: str = ""
) -> Study:
    """Save a change of the study's settings and audit it in the same transaction: `after` maps each
    changed field to its new value (the fields saved), `before` the same fields' old values. `study`
    is the row `_locked_study` returned, its `before` read from it."""
    for field, value in after.items():
        setattr(study, field, value)
    study.save(update_fields=list(after))
    record_event(
        actor=actor,
        study=study,
        action=action,
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        before=before,
        after=after,
        reason=reason,
    )
    return study


def _codes_snapshot(codes) -> list[dict]:
    return [{"code": c["code"], "meaning": c["meaning"]} for c in codes]


@transaction.atomic
def set_missing_codes(*, actor, study: Study, codes: list[dict]) -> Study:
    """The study's missing-data codes (NA, UNK, …): each a distinct code and its meaning."""
    _require_manage(actor, study, what="change its missing-data codes")
    codes = [{"code": str(c["code"]).strip(), "meaning": str(c["meaning"]).strip()} for c in codes]
    seen: set[str] = set()
    for c in codes:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", c["code"]):
            raise ValidationError(
                f"Missing-data code {c['code']!r}: use 1–16 letters, digits, '_', '-' or '.'."
            )
        if c["code"] in seen:
            raise ValidationError(f"Missing-data code {c['code']!r} is listed twice.")
        seen.add(c["code"])
    study = _locked_study(study)
    before = _codes_snapshot(study.missing_codes)
    if before == codes:
        return study
    return _change_study_setting(
        actor, study, "study.missing_codes", before={"missing_codes": before}, after={"missing_codes": codes}
    )


def _status_change_problem(study: Study, old: str, new: str, reason: str) -> str | None:
    """Why a study may not go from `old` to `new` status, or None (the rules of docs/administration.md)."""
    if new not in dict(Study.STATUSES):
        return f"Unknown study status {new!r}; choose development, production or closed."
    if (new == Study.CLOSED or old == Study.CLOSED) and not reason:
        verb = "Closing" if new == Study.CLOSED else "Reopening"
        return f"{verb} a study needs a reason (it goes into the audit trail)."
    if new == Study.DEVELOPMENT and study.subjects.exists():
        # Development lets definitions change in place; subjects' records were entered under them.
        return (
            f"{study.name} has enrolled subjects, so it cannot go (back) to development, where its "
            "definitions could change under their records. Fix: keep it in production and change "
            "definitions through new versions."
        )
    return None


@transaction.atomic
def set_study_status(*, actor, study: Study, status: str, reason: str = "") -> Study:
    """Move a study between development, production and closed (the only change a closed study
    takes is this one: reopening it). Closing and reopening need a reason; a study with subjects
    never goes back to development."""
    require_actor(actor)
    if not access.can(actor, "manage_study", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow managing it.")
    study = _locked_study(study)
    reason, old = reason.strip(), study.status
    if status == old:
        return study
    problem = _status_change_problem(study, old, status, reason)
    if problem:
        raise ValidationError(problem)
    return _change_study_setting(
        actor, study, "study.status", before={"status": old}, after={"status": status}, reason=reason
    )


@transaction.atomic
def set_subject_id_policy(*, actor, study: Study, subject_ids: str, pattern: str) -> Study:
    """Where the study's subject ids come from (generated by `pattern`, or kept as a source gives
    them). Only while the study has no subjects: ids already given keep their form for good, and a
    second form beside them would make ids ambiguous (and a site's sequence restart)."""
    _require_manage(actor, study, what="change the subject id policy")
    if subject_ids not in dict(Study.ID_POLICIES):
        raise ValidationError(f"Unknown subject id policy {subject_ids!r}; use 'pattern' or 'source'.")
    validate_id_pattern(pattern)
    study = _locked_study(study)
    before = {"subject_ids": study.subject_ids, "subject_id_pattern": study.subject_id_pattern}
    after = {"subject_ids": subject_ids, "subject_id_pattern": pattern}
    if before == after:
        return study
    if study.subjects.exists():
        raise ValidationError(
            f"{study.name} has enrolled subjects, so its subject id policy cannot change: their ids "
            "keep the form they were given, and new ids of another form beside them would be ambiguous."
        )
    return _change_study_setting(actor, study, "study.subject_ids", before=before, after=after)


# ---------------------------------------------------------------------------- the enrolment date
# A form that asks the enrolment date is its one source: the enrol page does not ask it again, and
# the subject's enrolment date (the timeline's day 0) follows the form's value. The item names a
# form asks it under: Capture's element, its British spelling, and REDCap's habit `date_enrolled`.
ENROLMENT_DATE_ITEMS = ("enrollment_date", "enrolment_date", "date_enrolled")


@dataclasses.dataclass(frozen=True)
class EnrolmentDateQuestion:
    """Where an arm's forms ask the enrolment date: the first event and form that do, and the item."""

    event: str
    event_title: str
    form: str
    form_title: str
    item: str


def _asks_enrolment_date(spec: dict) -> str | None:
    """The item of a compiled form (loader.compile_form) that asks the enrolment date, if one does
    (outside repeating groups: one subject has one enrolment date)."""
    for section in spec.get("sections", []):
        for entry in section.get("items", []):
            if "group" not in entry and entry.get("name") in ENROLMENT_DATE_ITEMS:
                return entry["name"]
    return None


def enrolment_date_question(arm: Arm | None) -> EnrolmentDateQuestion | None:
    """The first form of `arm` (in event and form order) that asks the enrolment date, or None."""
    if arm is None:
        return None
    forms = EventForm.objects.filter(event__arm=arm).select_related("event", "form")
    for entry in forms.order_by("event__order", "order"):
        item = _asks_enrolment_date(entry.form.spec)
        if item:
            return EnrolmentDateQuestion(
                entry.event.name, entry.event.title, entry.form.name, entry.form.title, item
            )
    return None


def follow_enrolment_date(actor, subject: Subject, record) -> None:
    """After a save of `record` (the record service calls this in its transaction): when it is the
    record of the form that asks the subject's enrolment date, the subject's date becomes the form's
    value, audited (`subject.enrollment_date`). A form that does not ask it costs no query."""
    item = _asks_enrolment_date(record.form.spec)
    if item is None or record.instance != 1:
        return
    try:
        day = dt.date.fromisoformat(str(record.data.get(item) or ""))
    except ValueError:
        return  # blank, or a missing-data code: the date stays as it is
    if day == subject.enrollment_date:
        return
    asked = enrolment_date_question(subject.arm)
    if asked is None or (asked.event, asked.form) != (record.event.name, record.form_name):
        return
    before = subject.enrollment_date
    Subject.objects.filter(pk=subject.pk).update(enrollment_date=day)
    subject.enrollment_date = day
    record_event(
        actor=actor,
        study=subject.study,
        action="subject.enrollment_date",
        object_type="subject",
        object_id=subject.pk,
        object_label=subject.subject_id,
        before={"enrollment_date": before.isoformat()},
        after={"enrollment_date": day.isoformat()},
        reason=f"from {asked.form_title} at {asked.event_title}",
    )


def follow_enrolment_dates(actor, saved: list[tuple[int, Any]]) -> None:
    """follow_enrolment_date for the (subject pk, record) pairs of a bulk write (imports): only the
    records of a form that asks the date read further, each of their subjects loaded once; each
    form's spec is read once (an import writes thousands of records of a few forms)."""
    asks: dict[int, str | None] = {}
    for _, record in saved:
        if record.form.pk not in asks:
            asks[record.form.pk] = _asks_enrolment_date(record.form.spec)
    asking = [(pk, r) for pk, r in saved if r.instance == 1 and asks[r.form.pk]]
    if not asking:
        return
    subjects = Subject.objects.select_related("arm", "study").in_bulk({pk for pk, _ in asking})
    for pk, record in asking:
        follow_enrolment_date(actor, subjects[pk], record)


def next_subject_id(study: Study, site: Site) -> tuple[int, str]:
    """The sequence number and id the next subject enrolled at `site` gets (enroll_subject takes
    it under the site's row lock; the enrol page shows it)."""
    return next(_site_sequence(study, site, 1, set()))


def id_pattern_in_words(pattern: str) -> str:
    """A subject id pattern as a sentence: '{site}-{seq:04d}' is "the site's code, then '-', then
    the subject's number at the site, 4 digits with leading zeros"."""
    import string

    parts = []
    for literal, name, spec, _ in string.Formatter().parse(pattern):
        if literal:
            parts.append(f"'{literal}'")
        if name == "site":
            parts.append("the site's code")
        elif name == "study":
            parts.append("the study's short name")
        elif name == "seq":
            digits = re.fullmatch(r"0?(\d+)d", spec or "")
            width = (
                f", {digits.group(1)} digits with leading zeros"
                if digits and (spec or "").startswith("0")
                else ""
            )
            parts.append(f"the subject's number at the site{width}")
    return ", then ".join(parts)
