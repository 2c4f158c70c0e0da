"""The response tests' shared data: a patient with lesions measured at baseline and week 8."""

from __future__ import annotations

import pytest

from capture.measurements import concepts
from tests.measurements.factories import lesion, measure, report


@pytest.fixture
def baseline(subjects):
    """Patient a (site A) at baseline (day 0): liver 30 and 25 and 12 mm, lung 8 mm, a node of short
    axis 12 mm and one of 18 mm; at day 56 the liver lesions 15 and 10 and the node 9."""
    a = subjects["a"]
    found = {
        "liver1": lesion(a, "liver1"),
        "liver2": lesion(a, "liver2"),
        "liver3": lesion(a, "liver3"),
        "lung": lesion(a, "lung", site="Lung"),
        "node12": lesion(a, "node12", node=True, site="Lymph node"),
        "node18": lesion(a, "node18", node=True, site="Lymph node"),
    }
    base = report(a, 0, event="baseline")
    for name, size in [("liver1", 30), ("liver2", 25), ("liver3", 12), ("lung", 8)]:
        measure(base, found[name], size)
    measure(base, found["node12"], 12, concepts.SHORT_AXIS)
    measure(base, found["node18"], 18, concepts.SHORT_AXIS)
    follow = report(a, 56, event="week_8")
    measure(follow, found["liver1"], 15)
    measure(follow, found["liver2"], 10)
    measure(follow, found["node18"], 9, concepts.SHORT_AXIS)
    return {"subject": a, **found}
