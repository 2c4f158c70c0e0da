"""Target and non-target designation at baseline, and a reader's status of a non-target lesion.

A reader or the data manager marks each lesion found at baseline as a target or a non-target
(RECIST 1.1 section 4.2): at most five targets, at most two per organ (the lesion's coded finding
site, with the EORTC RECIST committee's clarifications: all lymph nodes are one organ, and a paired
or lobed organ — lungs, kidneys, ovaries, adrenals — is one organ whatever side or part), each measurable at baseline (a long axis of at least 10 mm; a lymph node, a short axis of
at least 15 mm). A refusal says which rule and which lesion. Each change is audited and the
subject's responses are recomputed in the same transaction. Who may: access.may_designate_lesions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from capture.accounts.system import require_actor, user_or_none
from capture.audit.services import record_event
from capture.records.models import SubjectLock
from capture.studies import access
from capture.studies.models import Subject
from capture.studies.services import require_writable

from . import compute
from .compute import LONG, SHORT, SubjectData, Timepoint
from .models import Lesion, LesionStatus, MeasurementReport

MAX_TARGETS = 5
MAX_PER_ORGAN = 2
MEASURABLE_MM = Decimal(10)
MEASURABLE_NODE_MM = Decimal(15)
CHOICES = (Lesion.TARGET, Lesion.NON_TARGET, Lesion.UNDESIGNATED)


# Words naming a side or a part of an organ, dropped so "Upper lobe of left lung" and "Right lung"
# count against the same organ (EORTC RECIST 1.1 clarifications, "paired organs").
PART_WORDS = frozenset(
    {"left", "right", "bilateral", "upper", "lower", "middle", "lobe", "of", "structure", "the"}
)


def organ_of(lesion: Lesion) -> str:
    """The organ a lesion counts against for the two-per-organ rule."""
    site = lesion.site_meaning or lesion.site_code
    if lesion.is_node or "lymph node" in site.lower():
        return "Lymph nodes"
    words = [w for w in site.replace(",", " ").split() if w.lower() not in PART_WORDS]
    name = " ".join(words) or site
    return name[:1].upper() + name[1:] if name else "unknown site"


@dataclass(frozen=True)
class BaselineLesion:
    """A lesion seen at baseline, its baseline diameters and whether it may be a target."""

    lesion: Lesion
    long_mm: Decimal | None
    short_mm: Decimal | None

    @property
    def organ(self) -> str:
        return organ_of(self.lesion)

    def not_measurable(self) -> str:
        """Why the lesion cannot be a target ('' when it can)."""
        if self.lesion.is_node:
            if self.short_mm is None or self.short_mm < MEASURABLE_NODE_MM:
                return f"a lymph node is a target only with a short axis of at least {MEASURABLE_NODE_MM} mm"
            return ""
        if self.long_mm is None or self.long_mm < MEASURABLE_MM:
            return f"a lesion is a target only with a long axis of at least {MEASURABLE_MM} mm"
        return ""


@dataclass(frozen=True)
class Baseline:
    timepoint: Timepoint | None
    lesions: list[BaselineLesion]


def baseline_of(data: SubjectData) -> Baseline:
    """The baseline timepoint (compute.SubjectData.baseline_index) and the lesions it measured."""
    index = data.baseline_index()
    if index is None:
        return Baseline(None, [])
    point = data.timepoints[index]
    found = []
    for lesion in data.lesions:
        if point.seen(lesion.pk):
            values = point.values.get(lesion.pk, {})
            found.append(BaselineLesion(lesion, values.get(LONG), values.get(SHORT)))
    return Baseline(point, found)


def _problems(chosen: dict[int, str], baseline: Baseline) -> list[str]:
    by_pk = {entry.lesion.pk: entry for entry in baseline.lesions}
    targets = [by_pk[pk] for pk, role in chosen.items() if role == Lesion.TARGET]
    problems = [f"{entry.lesion.tracking_id}: {why}." for entry in targets if (why := entry.not_measurable())]
    if len(targets) > MAX_TARGETS:
        problems.append(f"{len(targets)} targets: RECIST 1.1 takes at most {MAX_TARGETS}.")
    organs: dict[str, list[str]] = {}
    for entry in targets:
        organs.setdefault(entry.organ, []).append(entry.lesion.tracking_id)
    problems += [
        f"{organ}: {len(ids)} targets ({', '.join(ids)}); RECIST 1.1 takes at most {MAX_PER_ORGAN} per organ."
        for organ, ids in organs.items()
        if len(ids) > MAX_PER_ORGAN
    ]
    return problems


def _require_designator(actor, subject: Subject) -> None:
    require_actor(actor)
    if not access.may_designate_lesions(actor, subject):
        raise PermissionDenied(f"Your role in {subject.study.name} does not allow designating lesions.")
    require_writable(subject.study, "designate lesions")
    if SubjectLock.objects.filter(subject=subject).exists():
        raise ValidationError(
            f"{subject} is locked; a data manager must unlock the subject before its lesions can change."
        )


@transaction.atomic
def designate(*, actor, subject: Subject, roles: dict[int, str]) -> list[Lesion]:
    """Give lesions seen at baseline (by pk) a role (CHOICES); the other lesions keep theirs.
    Refused whole when a rule is broken. Returns the lesions that changed."""
    _require_designator(actor, subject)
    Subject.objects.select_for_update().filter(pk=subject.pk).first()  # one designation at a time
    baseline = baseline_of(compute.read_subject(subject))
    by_pk = {entry.lesion.pk: entry.lesion for entry in baseline.lesions}
    unknown = [str(pk) for pk in roles if pk not in by_pk]
    if unknown or any(role not in CHOICES for role in roles.values()):
        raise ValidationError(
            "Designate lesions seen at baseline, each as target, non-target or not designated."
        )
    chosen = {pk: lesion.role for pk, lesion in by_pk.items() if lesion.role in CHOICES} | roles
    problems = _problems(chosen, baseline)
    if problems:
        raise ValidationError(" ".join(problems))
    changed = [by_pk[pk] for pk, role in roles.items() if by_pk[pk].role != role]
    if not changed:
        return []
    now = timezone.now()
    before = {lesion.tracking_id: lesion.role for lesion in changed}
    for lesion in changed:
        lesion.role, lesion.designated_at, lesion.designated_by = roles[lesion.pk], now, user_or_none(actor)
        lesion.save(update_fields=["role", "designated_at", "designated_by"])
    record_event(
        actor=actor,
        study=subject.study,
        action="lesion.designate",
        object_type="subject",
        object_id=subject.pk,
        object_label=subject.subject_id,
        before=before,
        after={lesion.tracking_id: lesion.role for lesion in changed},
    )
    compute.recompute_subject(subject)
    return changed


@transaction.atomic
def assess_lesions(*, actor, subject: Subject, report: MeasurementReport, statuses: dict[int, str]) -> int:
    """A reader's status of non-target and new lesions (by pk) in one report of the subject: a new
    LesionStatus row for each that changes (the newest counts), one audit event, the responses
    recomputed. Returns how many changed."""
    _require_designator(actor, subject)
    if report.subject_id != subject.pk:
        raise ValidationError("The report is not one of this subject's.")
    known = dict(LesionStatus.STATUSES)
    if any(status not in known for status in statuses.values()):
        raise ValidationError(f"A lesion status is one of: {', '.join(known)}.")
    lesions = {
        lesion.pk: lesion
        for lesion in Lesion.objects.filter(
            subject=subject, pk__in=list(statuses), role__in=(Lesion.NON_TARGET, Lesion.NEW)
        )
    }
    if len(lesions) != len(statuses):
        raise ValidationError("Assess non-target and new lesions of this subject only.")
    current = dict(
        LesionStatus.objects.filter(report=report, lesion_id__in=list(lesions))
        .order_by("created_at", "pk")
        .values_list("lesion_id", "status")
    )
    changed = {pk: status for pk, status in statuses.items() if current.get(pk) != status}
    if not changed:
        return 0
    LesionStatus.objects.bulk_create(
        LesionStatus(lesion_id=pk, report=report, status=status, created_by=user_or_none(actor))
        for pk, status in changed.items()
    )
    record_event(
        actor=actor,
        study=subject.study,
        action="lesion.status",
        object_type="subject",
        object_id=subject.pk,
        object_label=subject.subject_id,
        before={lesions[pk].tracking_id: current.get(pk, "") for pk in changed},
        after={lesions[pk].tracking_id: status for pk, status in changed.items()},
        reason=f"report {report.sop_uid}",
    )
    compute.recompute_subject(subject)
    return len(changed)
