"""Stored measurements -> stored responses (compute.recompute_subject), expectations worked by hand.

Subjects come from tests/conftest.py (`subjects`: patients a and b, PDX model of a) with the basic
schedule: baseline (day 0, no window) and week_8 (day 56, ±7 days). Data are made through the ORM.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydicom.sr.codedict import codes

from capture.measurements import concepts
from capture.measurements.compute import recompute_study, recompute_subject
from capture.measurements.models import BestResponse, Lesion, LesionStatus, ResponseRule, TimepointResponse
from tests.measurements.factories import lesion, measure, report


def _rows(subject, method=TimepointResponse.RECIST):
    return list(TimepointResponse.objects.filter(subject=subject, method=method).order_by("day"))


def _best(subject, method=TimepointResponse.RECIST):
    return BestResponse.objects.get(subject=subject, method=method).response


def test_the_concepts_are_the_codes_highdicom_and_pydicom_use():
    assert concepts.LONG_AXIS[:2] == ("SCT", codes.SCT.LongAxis.value) == ("SCT", "103339001")
    assert concepts.SHORT_AXIS[:2] == ("SCT", codes.SCT.ShortAxis.value) == ("SCT", "103340004")
    assert concepts.VOLUME[:2] == ("SCT", codes.SCT.Volume.value) == ("SCT", "118565006")
    assert concepts.MAXIMUM[:2] == ("SCT", codes.SCT.Maximum.value)


@pytest.fixture
def course(subjects):
    """Patient a: target T1 (liver), target node N1, non-target NT1; four timepoints.

    day   0 (baseline): T1 40, N1 short 20 (long 25), NT1 15       -> sum 40 + 20 = 60
    day  56 (week_8):   T1 25, N1 short 12, NT1 12 (present)       -> sum 37, -38.33 %: PR; NT non-CR/non-PD
    day 120 (no event): T1 0,  N1 short 8,  NT1 absent (a reader)  -> target CR (node < 10), NT CR: CR
    day 160 (no event): T1 0,  N1 short 9,  NT1 absent, L9 7 (new) -> sum 9 vs nadir 8 (+1 mm): target CR,
                                                                      but a new lesion: PD
    """
    a = subjects["a"]
    t1 = lesion(a, "T1", role=Lesion.TARGET)
    n1 = lesion(a, "N1", role=Lesion.TARGET, node=True, site="Mediastinal lymph node")
    nt1 = lesion(a, "NT1", role=Lesion.NON_TARGET, site="Lung")
    l9 = lesion(a, "L9", site="Bone")
    r0 = report(a, 0, event="baseline")
    measure(r0, t1, 40)
    measure(r0, n1, 20, concepts.SHORT_AXIS)
    measure(r0, n1, 25)
    measure(r0, nt1, 15)
    r56 = report(a, 56)  # no event given: the week_8 window (49..63) holds it
    measure(r56, t1, 2.5, unit="cm")
    measure(r56, n1, 12, concepts.SHORT_AXIS)
    measure(r56, nt1, 12)
    r120 = report(a, 120)
    measure(r120, t1, 0)
    measure(r120, n1, 8, concepts.SHORT_AXIS)
    LesionStatus.objects.create(lesion=nt1, report=r120, status="absent")
    r160 = report(a, 160)
    measure(r160, t1, 0)
    measure(r160, n1, 9, concepts.SHORT_AXIS)
    measure(r160, l9, 7)
    LesionStatus.objects.create(lesion=nt1, report=r160, status="absent")
    return {"subject": a, "l9": l9}


def test_each_timepoint_gets_its_response_and_the_numbers_behind_it(course):
    recompute_subject(course["subject"])
    rows = _rows(course["subject"])
    assert [(r.day, r.event, r.is_baseline, r.overall) for r in rows] == [
        (0, "baseline", True, ""),
        (56, "week_8", False, "PR"),
        (120, "", False, "CR"),
        (160, "", False, "PD"),
    ]
    assert [r.sum_mm for r in rows] == [Decimal("60.00"), Decimal("37.00"), Decimal("8.00"), Decimal("9.00")]
    assert [r.nadir_mm for r in rows[1:]] == [Decimal("60.00"), Decimal("37.00"), Decimal("8.00")]
    assert rows[1].change_from_baseline_pct == pytest.approx(-38.333, abs=1e-3)  # (37 - 60) / 60
    assert rows[2].change_from_nadir_pct == pytest.approx(-78.378, abs=1e-3)  # (8 - 37) / 37
    assert rows[3].change_from_nadir_pct == pytest.approx(12.5)  # (9 - 8) / 8: not PD by the sum
    assert [(r.target, r.non_target, r.new_lesions) for r in rows[1:]] == [
        ("PR", "NON-CR/NON-PD", False),
        ("CR", "CR", False),
        ("CR", "CR", True),
    ]
    assert _best(course["subject"]) == "CR"


def test_a_lesion_first_seen_after_baseline_becomes_a_new_lesion(course):
    recompute_subject(course["subject"])
    course["l9"].refresh_from_db()
    assert course["l9"].role == Lesion.NEW


def test_the_confirmation_rule_of_the_study_decides_the_best_response(course):
    # Confirmation: the CR of day 120 is followed only by PD, so it is not confirmed; the PR of day 56
    # is confirmed by the CR 64 days later (>= 28): best PR.
    ResponseRule.objects.create(study=course["subject"].study, confirm=True)
    recompute_subject(course["subject"])
    assert _best(course["subject"]) == "PR"
    assert BestResponse.objects.get(subject=course["subject"]).confirmed


def test_recomputing_replaces_the_rows_and_a_study_run_counts_its_subjects(course):
    recompute_subject(course["subject"])
    recompute_subject(course["subject"])
    assert TimepointResponse.objects.filter(subject=course["subject"]).count() == 4
    assert recompute_study(course["subject"].study) == 1  # the only subject with lesions
    assert BestResponse.objects.filter(subject=course["subject"]).count() == 1


def test_a_superseded_report_does_not_count(subjects):
    # T1 read 40 at baseline, corrected to 50 by a new report; day 56: 35 = 50 x 0.7 -> PR (with the
    # superseded 40 it would be -12.5 %: SD).
    a = subjects["a"]
    t1 = lesion(a, "T1", role=Lesion.TARGET)
    first = report(a, 0, event="baseline")
    measure(first, t1, 40)
    correction = report(a, 0, event="baseline", supersedes=first)
    measure(correction, t1, 50)
    measure(report(a, 56), t1, 35)
    recompute_subject(a)
    rows = _rows(a)
    assert [(r.sum_mm, r.overall) for r in rows] == [(Decimal("50.00"), ""), (Decimal("35.00"), "PR")]
    assert rows[0].report_id == correction.pk


def test_a_target_not_measured_makes_the_timepoint_not_evaluable(subjects):
    # T1 40 + T2 30 = 70 at baseline; day 56 only T1 (38): the measured 38 is not PD -> NE, no sum.
    a = subjects["a"]
    t1, t2 = lesion(a, "T1", role=Lesion.TARGET), lesion(a, "T2", role=Lesion.TARGET, site="Lung")
    base = report(a, 0)
    measure(base, t1, 40)
    measure(base, t2, 30)
    measure(report(a, 56), t1, 38)
    recompute_subject(a)
    follow = _rows(a)[1]
    assert (follow.sum_mm, follow.target, follow.overall) == (None, "NE", "NE")
    assert _best(a) == "NE"


def test_baseline_is_the_first_timepoint_that_measures_every_target(subjects):
    # A screening read at day -40 (outside every window) measures T1 only: not the baseline. Baseline
    # day 0: 30 + 20 = 50; day 56: 30 + 30 = 60, +20 % but +10 mm -> PD against the nadir 50.
    a = subjects["a"]
    t1, t2 = lesion(a, "T1", role=Lesion.TARGET), lesion(a, "T2", role=Lesion.TARGET, site="Lung")
    measure(report(a, -40), t1, 10)
    base = report(a, 0)
    measure(base, t1, 30)
    measure(base, t2, 20)
    follow = report(a, 56)
    measure(follow, t1, 30)
    measure(follow, t2, 30)
    recompute_subject(a)
    assert [(r.day, r.sum_mm, r.overall) for r in _rows(a)] == [
        (0, Decimal("50.00"), ""),
        (56, Decimal("60.00"), "PD"),
    ]


def test_nothing_is_stored_before_targets_are_designated(subjects):
    a = subjects["a"]
    measure(report(a, 0), lesion(a, "T1"), 30)
    recompute_subject(a)
    assert not TimepointResponse.objects.filter(subject=a).exists()


def test_a_pdx_model_gets_mrecist_from_its_volume_series(subjects):
    # Volumes 200, 150, 0.05 cm3 (= 50 mm3), 8 mm3 at days 0, 7, 14, 21 (the first is day 0):
    # dVol 0, -25, -75, -96; running means 0, -12.5, -33.33, -49. Over t >= 10: BestResponse -96,
    # BestAvgResponse -49 -> mCR (-96 < -95 and -49 < -40).
    model = subjects["model"]
    tumour = lesion(model, "tumour", site="Flank")
    for day, value, unit in [(3, 200, "mm3"), (10, 150, "mm3"), (17, "0.05", "cm3"), (24, 8, "mm3")]:
        measure(report(model, day), tumour, value, concepts.VOLUME, unit)
    recompute_subject(model)
    rows = _rows(model, TimepointResponse.MRECIST)
    assert [(r.day, r.is_baseline, r.volume_mm3) for r in rows] == [
        (3, True, Decimal("200.000")),
        (10, False, Decimal("150.000")),
        (17, False, Decimal("50.000")),
        (24, False, Decimal("8.000")),
    ]
    assert [r.change_from_baseline_pct for r in rows] == pytest.approx([0, -25, -75, -96])
    best = BestResponse.objects.get(subject=model, method=TimepointResponse.MRECIST)
    assert (best.response, best.best_response_pct, best.best_average_response_pct) == (
        "mCR",
        pytest.approx(-96),
        pytest.approx(-49),
    )


@pytest.mark.parametrize("chunk", [1, 500])
def test_a_study_run_in_chunks_gives_each_subject_its_own_responses(subjects, chunk):
    # a: 40 -> 20 (-50 %, PR); b: 40 -> 50 (+25 %, +10 mm: PD). Read and stored together or apart.
    for key, later in (("a", 20), ("b", 50)):
        subject = subjects[key]
        t1 = lesion(subject, "T1", role=Lesion.TARGET)
        measure(report(subject, 0), t1, 40)
        measure(report(subject, 56), t1, later)
    assert recompute_study(subjects["a"].study, chunk=chunk) == 2
    assert (_best(subjects["a"]), _best(subjects["b"])) == ("PR", "PD")
    assert TimepointResponse.objects.count() == 4
