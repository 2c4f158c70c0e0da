"""Responses on the subject timeline (data, picture, JSON) and the co-clinical view, as each role
may see them: real dates for identified roles, shifted dates for de-identified ones."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.imaging import svg, timeline
from capture.measurements import concepts, designation
from capture.measurements.compute import recompute_subject
from capture.studies import services
from tests.measurements.factories import lesion, measure, report


@pytest.fixture
def designated(personas, baseline):
    """baseline's patient with liver1, liver2, node18 targets: 73 mm -> 34 mm at day 56 (PR)."""
    roles = {baseline[name].pk: "target" for name in ("liver1", "liver2", "node18")}
    designation.designate(actor=personas["admin"], subject=baseline["subject"], roles=roles)
    return baseline["subject"]


def test_the_timeline_holds_each_timepoint_response_with_its_numbers(personas, designated):
    built = timeline.build(personas["data_manager"], designated)
    assert [(p.day, p.event, p.baseline, p.overall, p.sum_mm) for p in built.responses] == [
        (0, "baseline", True, "", 73.0),
        (56, "week_8", False, "PR", 34.0),
    ]
    assert built.responses[1].change_from_baseline_pct == pytest.approx(-53.425, abs=1e-3)  # (34 - 73) / 73
    assert built.responses[1].date == (designated.enrollment_date + dt.timedelta(days=56)).isoformat()
    assert [(b.method, b.response) for b in built.best] == [("recist11", "PR")]
    picture = svg.render(built)
    assert ">Response</text>" in picture
    assert "RECIST 1.1 day 56" in picture and ": PR; sum 34.0 mm, -53.4 % from baseline" in picture


def test_a_deidentified_role_sees_the_response_days_with_shifted_dates(client, personas, designated):
    client.force_login(personas["statistician"])
    answer = client.get(reverse("imaging:timeline_json", args=["trial", designated.subject_id])).json()
    week8 = answer["responses"][1]
    shifted = designated.enrollment_date + dt.timedelta(days=56 + designated.date_shift_days)
    assert (week8["day"], week8["date"], week8["overall"]) == (56, shifted.isoformat(), "PR")
    page = client.get(reverse("imaging:timeline", args=["trial", designated.subject_id])).content.decode()
    real = (designated.enrollment_date + dt.timedelta(days=56)).isoformat()
    assert shifted.isoformat() in page and real not in page


def test_the_coclinical_view_puts_the_patients_recist_beside_its_models_mrecist(client, personas, subjects):
    # Patient a: target 40 -> 20 at day 56 (-50 %): PR. Its PDX (subjects["model"]): volumes 100 at
    # day 0 and 300 at day 14 (+200 %): mPD. A second PDX at site B is hidden from site A's coordinator.
    a, model = subjects["a"], subjects["model"]
    t1 = lesion(a, "T1")
    measure(report(a, 0), t1, 40)
    designation.designate(actor=personas["admin"], subject=a, roles={t1.pk: "target"})
    measure(report(a, 56), t1, 20)
    recompute_subject(a)
    tumour = lesion(model, "tumour", site="Flank")
    measure(report(model, 0), tumour, 100, concepts.VOLUME, "mm3")
    measure(report(model, 14), tumour, 300, concepts.VOLUME, "mm3")
    recompute_subject(model)
    elsewhere = services.enroll_subject(
        actor=SYSTEM,
        study=a.study,
        site=subjects["b"].site,
        enrollment_date=a.enrollment_date,
        kind="animal",
        derived_from=a,
        model_type="PDX",
    )
    hidden = lesion(elsewhere, "tumour")
    measure(report(elsewhere, 0), hidden, 100, concepts.VOLUME, "mm3")
    measure(report(elsewhere, 14), hidden, 10, concepts.VOLUME, "mm3")
    recompute_subject(elsewhere)

    seen = timeline.build(personas["data_manager"], a)
    assert [(b.subject_id, b.kind, b.response) for b in seen.best] == [(a.subject_id, "Patient", "PR")]
    assert [(b.subject_id, b.kind, b.response) for b in seen.coclinical] == [
        (model.subject_id, "PDX", "mPD"),
        (elsewhere.subject_id, "PDX", "mPR"),  # -90 %, average -45 %: mPR
    ]
    by_coordinator = timeline.build(personas["coordinator_a"], a)
    assert [b.subject_id for b in by_coordinator.coclinical] == [model.subject_id]
    client.force_login(personas["coordinator_a"])
    page = client.get(reverse("imaging:timeline", args=["trial", model.subject_id])).content.decode()
    assert 'id="coclinical"' in page and a.subject_id in page and "mPD" in page
