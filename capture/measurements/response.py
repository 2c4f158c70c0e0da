"""RECIST 1.1 response per timepoint and best overall response, from a lesion table.

Source: Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid
tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45(2):228-247.

The rules, as implemented here (section numbers of the paper):
- Sum of diameters (4.3.1): long axis of every target lesion, short axis of target lymph nodes.
- Target response (4.3.1): CR when every non-nodal target has disappeared (0 mm) and every target
  node has a short axis under 10 mm (so the sum may be above 0 at CR); PD when the sum is at least
  20 % above the nadir (the smallest sum on study, baseline included) AND at least 5 mm above it;
  PR when the sum is at least 30 % below the baseline sum; SD otherwise. CR is tested before PD.
- A target lesion not measured makes the target response NE, unless the sum of the lesions that were
  measured already meets PD (appendix I, "missing assessments and inevaluable designation").
- Non-target response (4.3.2): PD on unequivocal progression of any non-target lesion; CR when every
  non-target lesion is absent (nodes: normal size, < 10 mm short axis); NE when none progressed but
  some were not evaluated; NON-CR/NON-PD otherwise. Without non-target lesions it is None.
- Overall response (4.4.1, tables 1 and 2): any of target PD, non-target PD, new lesion -> PD; then
  target NE -> NE; target CR with non-target CR (or none) -> CR, with non-target non-CR/non-PD or NE
  -> PR; target PR -> PR; target SD -> SD. Without target lesions (table 2): non-target CR -> CR,
  NON-CR/NON-PD -> NON-CR/NON-PD, NE -> NE.
- Best overall response (4.4.2, table 3): the best response recorded until the first PD (later
  timepoints are ignored). SD (and NON-CR/NON-PD) counts only when met at a timepoint at least
  `sd_min_days` after baseline; otherwise the best response is PD if progression follows, else NE.
  With confirmation, a CR counts when a later CR is recorded at least `confirm_min_days` later
  (before progression), a PR (or a CR confirmed only by a PR) counts when a later CR or PR is; an
  unconfirmed CR or PR counts as SD (when the SD duration is met). Intervening NE or SD timepoints
  do not break a confirmation (a choice: the paper leaves it to the protocol).

Values are compared with exact decimal arithmetic (a 30.0 % decrease is a PR, not a float accident).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Response(StrEnum):
    """A RECIST 1.1 response category; if you add one, add it to RANK below."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    NON_CR_NON_PD = "NON-CR/NON-PD"
    PD = "PD"
    NE = "NE"


class NonTargetStatus(StrEnum):
    """What a reader records for one non-target lesion at one timepoint."""

    ABSENT = "absent"  # disappeared; for a node, normal size (< 10 mm short axis)
    PRESENT = "present"  # persisting, not unequivocally progressed
    PROGRESSION = "progression"  # unequivocal progression
    NOT_EVALUATED = "not_evaluated"


# Best first; best overall response takes the best of the qualifying candidates.
RANK = {
    Response.CR: 0,
    Response.PR: 1,
    Response.SD: 2,
    Response.NON_CR_NON_PD: 3,
    Response.PD: 4,
    Response.NE: 5,
}

NORMAL_NODE_MM = Decimal(10)
PD_RELATIVE = Decimal("1.2")
PD_ABSOLUTE_MM = Decimal(5)
PR_RELATIVE = Decimal("0.7")


@dataclass(frozen=True)
class Lesion:
    """A lesion designated at baseline: target or not, lymph node or not."""

    lesion_id: str
    target: bool
    node: bool = False


@dataclass(frozen=True)
class Measurement:
    """Diameters of one target lesion at one timepoint, in millimetres."""

    long_axis_mm: float | None = None
    short_axis_mm: float | None = None


@dataclass(frozen=True)
class Assessment:
    """One timepoint: day since baseline, target measurements, non-target statuses, new lesions.

    A target lesion absent from `targets` or mapped to None was not measured."""

    day: int
    targets: Mapping[str, Measurement | None]
    non_targets: Mapping[str, NonTargetStatus]
    new_lesions: bool = False


@dataclass(frozen=True)
class TimepointResult:
    """The response at one follow-up timepoint and the numbers behind it."""

    day: int
    sum_mm: float | None  # None when a target lesion was not measured
    nadir_mm: float  # the smallest complete sum before this timepoint (baseline included)
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    target: Response | None  # None without target lesions
    non_target: Response | None  # None without non-target lesions
    new_lesions: bool
    overall: Response


@dataclass(frozen=True)
class ConfirmationRule:
    """The study's rule for best overall response (RECIST 1.1 section 4.4.2)."""

    confirm: bool = False
    confirm_min_days: int = 28
    sd_min_days: int = 42


def lesion_diameter(lesion: Lesion, measurement: Measurement | None) -> Decimal | None:
    """The diameter that enters the sum: short axis for a node, long axis otherwise."""
    if measurement is None:
        return None
    value = measurement.short_axis_mm if lesion.node else measurement.long_axis_mm
    return None if value is None else Decimal(str(value))


def _target_diameters(lesions: Sequence[Lesion], assessment: Assessment) -> list[Decimal | None]:
    return [
        lesion_diameter(lesion, assessment.targets.get(lesion.lesion_id))
        for lesion in lesions
        if lesion.target
    ]


def _is_progression(total: Decimal, nadir: Decimal) -> bool:
    return total >= nadir * PD_RELATIVE and total - nadir >= PD_ABSOLUTE_MM


def _is_complete(lesions: Sequence[Lesion], diameters: Sequence[Decimal | None]) -> bool:
    targets = [lesion for lesion in lesions if lesion.target]
    return all(
        value is not None and (value < NORMAL_NODE_MM if lesion.node else value == 0)
        for lesion, value in zip(targets, diameters, strict=True)
    )


def target_response(
    lesions: Sequence[Lesion], diameters: Sequence[Decimal | None], baseline: Decimal, nadir: Decimal
) -> Response:
    """Target response from the diameters of the target lesions (in lesion table order)."""
    measured = sum((value for value in diameters if value is not None), Decimal(0))
    if any(value is None for value in diameters):
        return Response.PD if _is_progression(measured, nadir) else Response.NE
    if _is_complete(lesions, diameters):
        return Response.CR
    if _is_progression(measured, nadir):
        return Response.PD
    if measured <= baseline * PR_RELATIVE:
        return Response.PR
    return Response.SD


def non_target_response(statuses: Sequence[NonTargetStatus]) -> Response | None:
    """Non-target response from the status of every non-target lesion (None without any)."""
    if not statuses:
        return None
    if NonTargetStatus.PROGRESSION in statuses:
        return Response.PD
    if NonTargetStatus.NOT_EVALUATED in statuses:
        return Response.NE
    if all(status == NonTargetStatus.ABSENT for status in statuses):
        return Response.CR
    return Response.NON_CR_NON_PD


def overall_response(target: Response | None, non_target: Response | None, new_lesions: bool) -> Response:
    """RECIST 1.1 tables 1 (with target lesions) and 2 (non-target lesions only)."""
    if new_lesions or Response.PD in (target, non_target):
        return Response.PD
    if target is None:
        return non_target if non_target is not None else Response.NE
    if target == Response.NE:
        return Response.NE
    if target == Response.CR:
        return Response.CR if non_target in (None, Response.CR) else Response.PR
    return target


def _pct(value: Decimal, reference: Decimal) -> float | None:
    if reference == 0:
        return None
    return float((value - reference) / reference * 100)


def assess(
    lesions: Sequence[Lesion], baseline: Assessment, followups: Sequence[Assessment]
) -> list[TimepointResult]:
    """Response at every follow-up timepoint, in the order given (sorted by day by the caller)."""
    base_values = _target_diameters(lesions, baseline)
    if any(value is None for value in base_values):
        raise ValueError("Every target lesion needs its baseline diameter; measure it or un-target it.")
    base_sum = sum((value for value in base_values if value is not None), Decimal(0))
    has_targets = any(lesion.target for lesion in lesions)
    non_target_ids = [lesion.lesion_id for lesion in lesions if not lesion.target]
    nadir = base_sum
    results = []
    for assessment in followups:
        values = _target_diameters(lesions, assessment)
        complete = all(value is not None for value in values)
        total = sum((value for value in values if value is not None), Decimal(0))
        target = target_response(lesions, values, base_sum, nadir) if has_targets else None
        statuses = [
            assessment.non_targets.get(lesion_id, NonTargetStatus.NOT_EVALUATED)
            for lesion_id in non_target_ids
        ]
        non_target = non_target_response(statuses)
        results.append(
            TimepointResult(
                day=assessment.day,
                sum_mm=float(total) if complete and has_targets else None,
                nadir_mm=float(nadir),
                change_from_baseline_pct=_pct(total, base_sum) if complete else None,
                change_from_nadir_pct=_pct(total, nadir) if complete else None,
                target=target,
                non_target=non_target,
                new_lesions=assessment.new_lesions,
                overall=overall_response(target, non_target, assessment.new_lesions),
            )
        )
        if complete and has_targets:
            nadir = min(nadir, total)
    return results


def _until_progression(results: Sequence[TimepointResult]) -> list[TimepointResult]:
    kept = []
    for result in results:
        kept.append(result)
        if result.overall == Response.PD:
            break
    return kept


def _confirmed(
    results: Sequence[TimepointResult], index: int, accepted: set[Response], min_days: int
) -> bool:
    first = results[index]
    return any(
        later.overall in accepted and later.day - first.day >= min_days for later in results[index + 1 :]
    )


def _candidate(results: Sequence[TimepointResult], index: int, rule: ConfirmationRule) -> Response | None:
    """What one timepoint can contribute to the best overall response (None: nothing)."""
    result = results[index]
    response = result.overall
    if response in (Response.CR, Response.PR) and not rule.confirm:
        return response
    if response == Response.CR and _confirmed(results, index, {Response.CR}, rule.confirm_min_days):
        return Response.CR
    if response in (Response.CR, Response.PR) and _confirmed(
        results, index, {Response.CR, Response.PR}, rule.confirm_min_days
    ):
        return Response.PR
    if response in (Response.CR, Response.PR, Response.SD) and result.day >= rule.sd_min_days:
        return Response.SD
    if response == Response.NON_CR_NON_PD and result.day >= rule.sd_min_days:
        return Response.NON_CR_NON_PD
    return Response.PD if response == Response.PD else None


def best_overall_response(
    results: Sequence[TimepointResult], rule: ConfirmationRule | None = None
) -> Response:
    """Best overall response up to progression, under the study's confirmation rule."""
    rule = rule or ConfirmationRule()
    kept = _until_progression(results)
    candidates = [_candidate(kept, index, rule) for index in range(len(kept))]
    found = [candidate for candidate in candidates if candidate is not None]
    return min(found, key=RANK.__getitem__) if found else Response.NE
