"""The study's response setting: the confirmation rule of best overall response (none, or a CR/PR
confirmed at least N days later with SD at least M days after baseline) and the form item readers
enter their overall response in. Changed on the study's Settings page by a study administrator,
audited, and followed by a recomputation of the study's responses: in the request for a small
study, as a background job (capture/jobs) for a large one."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from capture.accounts.system import require_actor
from capture.audit.services import record_event
from capture.jobs import services as jobs
from capture.studies import access
from capture.studies.models import Study
from capture.studies.services import require_writable

from . import compute
from .models import ResponseRule

LARGE_STUDY = 200  # subjects with lesions: above this, recomputing is a background job
HANDLER = "capture.measurements.response_rule.recompute_responses"
FIELDS = ("confirm", "confirm_min_days", "sd_min_days", "response_item")


def rule_of(study: Study) -> ResponseRule:
    """The study's setting (an unsaved row of defaults when it has none yet)."""
    return ResponseRule.objects.filter(study=study).first() or ResponseRule(study=study)


def snapshot(rule: ResponseRule) -> dict:
    return {name: getattr(rule, name) for name in FIELDS}


def _check(values: dict) -> None:
    for name in ("confirm_min_days", "sd_min_days"):
        if not 1 <= int(values[name]) <= 365:
            raise ValidationError(
                f"{name.replace('_', ' ').capitalize()}: give a number of days from 1 to 365."
            )
    if values["response_item"] and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,99}", values["response_item"]):
        raise ValidationError(
            "The response item is an item name of the study's forms (letters, digits, '_'), "
            "such as overall_response; leave it blank when readers enter none."
        )


@transaction.atomic
def set_response_rule(*, actor, study: Study, **values) -> ResponseRule:
    """Save the study's response setting (FIELDS), audit it and recompute the responses."""
    require_actor(actor)
    if not access.can(actor, "manage_study", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow managing it.")
    require_writable(study, "change its response rule")
    _check(values)
    rule = ResponseRule.objects.select_for_update().filter(study=study).first() or ResponseRule(study=study)
    before = snapshot(rule)
    for name in FIELDS:
        setattr(rule, name, values[name])
    after = snapshot(rule)
    if rule.pk is not None and before == after:
        return rule
    rule.save()
    record_event(
        actor=actor,
        study=study,
        action="study.response_rule",
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        before=before,
        after=after,
    )
    if compute.subjects_with_measurements(study).count() > LARGE_STUDY:
        jobs.start_job(
            actor=actor,
            study=study,
            kind="responses",
            title=f"Recompute the responses of {study.name}",
            handler=HANDLER,
        )
    else:
        compute.recompute_study(study)
    return rule


def recompute_responses(job, progress) -> dict:
    """The job: every subject of the study with lesions, recomputed under the current rule."""

    def report(done: int, total: int) -> None:
        progress(done, total, f"Recomputed {done} of {total} subjects")

    return {"subjects": compute.recompute_study(job.study, report)}
