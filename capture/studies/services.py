"""Workflows on studies: create a study, add sites, grant roles, enrol subjects.

Each function runs in one transaction, checks its preconditions, writes, and
records the audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from capture.audit.services import record_event
from capture.definitions.models import Arm, Schedule

from . import access, pseudonyms
from .models import STUDY_PERMISSIONS, Membership, Site, Study, Subject, validate_id_pattern
from .roles import ROLES


def _study_snapshot(study: Study) -> dict:
    return {
        "slug": study.slug,
        "name": study.name,
        "schedule": study.schedule.ref,
        "subject_id_pattern": study.subject_id_pattern,
        "subject_ids": study.subject_ids,
        "record_id_field": study.record_id_field,
        "missing_codes": study.missing_codes,
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
) -> Study:
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
    return study


@transaction.atomic
def add_site(*, actor, study: Study, code: str, name: str) -> Site:
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


def _check_given_id(study: Study, subject_id: str) -> None:
    if not study.keeps_source_ids:
        raise ValidationError(
            f"{study.name} generates subject ids from its pattern; an id cannot be given. Fix: enrol without "
            "an id, or create the study with ids kept as the source gives them."
        )
    max_length = Subject._meta.get_field("subject_id").max_length
    if not subject_id.strip() or subject_id != subject_id.strip() or len(subject_id) > max_length:
        raise ValidationError(
            f"Subject id {subject_id!r} must be 1 to {max_length} characters without surrounding spaces."
        )
    if Subject.objects.filter(study=study, subject_id=subject_id).exists():
        raise ValidationError(f"Subject {subject_id!r} exists already in {study.name}.")


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
    as given when the study keeps its source's ids (Study.subject_ids == "source")."""
    if actor is not None and not access.may_act_at_site(actor, "enroll_subject", study, site):
        raise PermissionDenied(f"You may not enrol subjects at site {site.code}.")
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
    if derived_from is not None:
        if kind != Subject.ANIMAL:
            raise ValidationError("Only an animal model can be derived from another subject.")
        if derived_from.study.pk != study.pk:
            raise ValidationError("A model must be derived from a patient of the same study.")
        if derived_from.kind != Subject.PATIENT:
            raise ValidationError("A model is derived from a patient, not from another model.")
    elif model_type and kind != Subject.ANIMAL:
        raise ValidationError("Only animal subjects have a model type.")
    if enrollment_date > dt.date.today() + dt.timedelta(days=1):  # noqa: DTZ011 - a calendar date, local to the site
        raise ValidationError("The enrolment date is in the future.")

    # Lock the site row: concurrent enrolments at one site must get distinct sequence numbers.
    Site.objects.select_for_update().get(pk=site.pk)
    last = Subject.objects.filter(site=site).order_by("-seq").values_list("seq", flat=True).first() or 0
    seq = last + 1
    if subject_id is not None:
        _check_given_id(study, subject_id)
    else:
        subject_id = study.subject_id_pattern.format(site=site.code, seq=seq, study=study.slug)
    if Subject.objects.filter(study=study, subject_id=subject_id).exists():
        raise ValidationError(
            f"The subject id pattern gives {subject_id!r}, which is taken; the pattern must include {{site}} "
            "when a study has several sites."
        )
    subject = Subject.objects.create(
        study=study,
        site=site,
        arm=arm,
        subject_id=subject_id,
        seq=seq,
        kind=kind,
        derived_from=derived_from,
        model_type=model_type,
        enrollment_date=enrollment_date,
        date_shift_days=pseudonyms.date_shift_days(study, subject_id),
    )
    record_event(
        actor=actor,
        study=study,
        action="subject.enroll",
        object_type="subject",
        object_id=subject.pk,
        object_label=subject.subject_id,
        after=_subject_snapshot(subject),
        reason=reason,
    )
    return subject
