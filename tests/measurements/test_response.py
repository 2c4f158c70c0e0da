"""RECIST 1.1 and mRECIST against hand-worked vectors (vectors.yaml), plus a few properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from capture.measurements.mrecist import MRecist, mrecist
from capture.measurements.response import (
    RANK,
    Assessment,
    ConfirmationRule,
    Lesion,
    Measurement,
    NonTargetStatus,
    Response,
    TimepointResult,
    assess,
    best_overall_response,
    overall_response,
)

VECTORS = yaml.safe_load((Path(__file__).parent / "vectors.yaml").read_text())
FIELDS = {
    "sum": "sum_mm",
    "nadir": "nadir_mm",
    "change_from_baseline": "change_from_baseline_pct",
    "change_from_nadir": "change_from_nadir_pct",
    "target": "target",
    "non_target": "non_target",
    "overall": "overall",
}


def _measurement(lesion: Lesion, value: Any) -> Measurement | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return Measurement(long_axis_mm=value.get("long"), short_axis_mm=value.get("short"))
    if lesion.node:
        return Measurement(short_axis_mm=value)
    return Measurement(long_axis_mm=value)


def _assessment(lesions: list[Lesion], raw: dict[str, Any]) -> Assessment:
    by_id = {lesion.lesion_id: lesion for lesion in lesions}
    targets = {
        lesion_id: _measurement(by_id[lesion_id], value)
        for lesion_id, value in (raw.get("targets") or {}).items()
    }
    non_targets = {
        lesion_id: NonTargetStatus(value) for lesion_id, value in (raw.get("non_targets") or {}).items()
    }
    return Assessment(raw.get("day", 0), targets, non_targets, raw.get("new", False))


def _lesions(case: dict[str, Any]) -> list[Lesion]:
    return [Lesion(raw["id"], raw["target"], raw.get("node", False)) for raw in case["lesions"]]


def _check(result: TimepointResult, expected: dict[str, Any], where: str) -> None:
    for key, value in expected.items():
        actual = getattr(result, FIELDS[key])
        if isinstance(value, float | int) and not isinstance(value, bool):
            assert actual == pytest.approx(value), f"{where}: {key}"
        elif key in ("target", "non_target", "overall") and value is not None:
            assert actual == Response(value), f"{where}: {key}"
        else:
            assert actual == value, f"{where}: {key}"


def test_there_are_at_least_30_vectors():
    assert len(VECTORS["recist"]) + len(VECTORS["mrecist"]) >= 30


@pytest.mark.parametrize("case", VECTORS["recist"], ids=lambda case: case["name"])
def test_recist_vector(case):
    lesions = _lesions(case)
    baseline = _assessment(lesions, case["baseline"])
    followups = [_assessment(lesions, raw) for raw in case["followups"]]
    results = assess(lesions, baseline, followups)
    assert len(results) == len(case["expected"])
    for result, expected in zip(results, case["expected"], strict=True):
        _check(result, expected, f"day {result.day}")
    rule = ConfirmationRule(**case.get("rule", {}))
    assert best_overall_response(results, rule) == Response(case["best"])


@pytest.mark.parametrize("case", VECTORS["mrecist"], ids=lambda case: case["name"])
def test_mrecist_vector(case):
    result = mrecist(case["days"], case["volumes"])
    assert result.best_response_pct == pytest.approx(case["best_response"])
    assert result.best_average_response_pct == pytest.approx(case["best_average_response"])
    assert result.category == MRecist(case["category"])


def test_a_baseline_without_every_target_measured_is_refused():
    lesions = [Lesion("T1", target=True), Lesion("T2", target=True)]
    baseline = Assessment(0, {"T1": Measurement(long_axis_mm=10)}, {})
    with pytest.raises(ValueError, match="baseline diameter"):
        assess(lesions, baseline, [])


def test_mrecist_needs_a_measurement_from_day_10():
    with pytest.raises(ValueError, match="at least 10 days"):
        mrecist([0, 3, 7], [100, 90, 80])


def test_mrecist_refuses_unsorted_days():
    with pytest.raises(ValueError, match="increase"):
        mrecist([0, 14, 10], [100, 90, 80])


RESPONSES = st.sampled_from([None, *Response])


@given(target=RESPONSES, non_target=RESPONSES)
def test_a_new_lesion_is_always_progression(target, non_target):
    assert overall_response(target, non_target, new_lesions=True) == Response.PD


diameters = st.integers(min_value=1, max_value=200)


@given(
    baseline=st.lists(diameters, min_size=1, max_size=5),
    data=st.data(),
)
def test_a_new_lesion_at_every_timepoint_gives_progression_at_best(baseline, data):
    lesions = [Lesion(f"T{n}", target=True) for n in range(len(baseline))]
    base = Assessment(0, {f"T{n}": Measurement(v) for n, v in enumerate(baseline)}, {})
    days = data.draw(st.lists(st.integers(1, 400), min_size=1, max_size=6, unique=True))
    followups = [
        Assessment(
            day,
            {f"T{n}": Measurement(data.draw(st.integers(0, 200))) for n in range(len(baseline))},
            {},
            new_lesions=True,
        )
        for day in sorted(days)
    ]
    results = assess(lesions, base, followups)
    assert all(result.overall == Response.PD for result in results)
    assert best_overall_response(results) == Response.PD


@given(
    baseline=st.lists(diameters, min_size=1, max_size=5),
    series=st.lists(st.lists(st.integers(0, 200), min_size=5, max_size=5), min_size=1, max_size=6),
    confirm=st.booleans(),
)
def test_confirmation_never_improves_the_best_response(baseline, series, confirm):
    lesions = [Lesion(f"T{n}", target=True) for n in range(len(baseline))]
    base = Assessment(0, {f"T{n}": Measurement(v) for n, v in enumerate(baseline)}, {})
    followups = [
        Assessment(
            42 * (index + 1),
            {f"T{n}": Measurement(values[n]) for n in range(len(baseline))},
            {},
        )
        for index, values in enumerate(series)
    ]
    results = assess(lesions, base, followups)
    loose = best_overall_response(results, ConfirmationRule(confirm=False))
    strict = best_overall_response(results, ConfirmationRule(confirm=True))
    assert RANK[strict] >= RANK[loose]


@given(volumes=st.lists(st.floats(min_value=0.1, max_value=5000), min_size=2, max_size=10))
def test_mrecist_best_response_is_no_worse_than_the_last_change(volumes):
    days = [0, *range(10, 10 * len(volumes), 10)]
    result = mrecist(days, volumes)
    last = (volumes[-1] - volumes[0]) / volumes[0] * 100
    assert result.best_response_pct <= last + 1e-6
    assert result.category in set(MRecist)
