"""Target designation at baseline: the RECIST 1.1 limits, the audit, the recomputation, and who
may (data entry roles at the subject's site) or may only read (monitor, statistician, PI)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.measurements import concepts, designation
from capture.measurements.models import (
    BestResponse,
    Lesion,
    LesionStatus,
    MeasurementReport,
    TimepointResponse,
)
from tests.measurements.factories import lesion, measure, report


def _roles(baseline, **chosen):
    return {baseline[name].pk: role for name, role in chosen.items()}


def test_a_designation_is_saved_audited_and_gives_the_responses(personas, baseline):
    # Targets liver1 30, liver2 25, node18 18 (sum 73); day 56: 15 + 10 + 9 = 34, -53.4 %: PR.
    # The lung lesion is a non-target not seen at day 56: not evaluated, which leaves a PR a PR.
    a = baseline["subject"]
    roles = _roles(baseline, liver1="target", liver2="target", node18="target", lung="non_target")
    changed = designation.designate(actor=personas["data_manager"], subject=a, roles=roles)
    assert {lesion.tracking_id for lesion in changed} == {"liver1", "liver2", "node18", "lung"}
    assert Lesion.objects.get(pk=baseline["node18"].pk).designated_by == personas["data_manager"]
    event = AuditEvent.objects.get(action="lesion.designate")
    assert event.after == {"liver1": "target", "liver2": "target", "node18": "target", "lung": "non_target"}
    follow = TimepointResponse.objects.get(subject=a, is_baseline=False)
    assert (str(follow.sum_mm), follow.overall, follow.non_target) == ("34.00", "PR", "NE")
    assert BestResponse.objects.get(subject=a).response == "PR"


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ({"lung": "target"}, "lung: a lesion is a target only with a long axis of at least 10 mm"),
        ({"node12": "target"}, "node12: a lymph node is a target only with a short axis of at least 15 mm"),
        (
            {"liver1": "target", "liver2": "target", "liver3": "target"},
            "Liver: 3 targets (liver1, liver2, liver3); RECIST 1.1 takes at most 2 per organ",
        ),
    ],
)
def test_a_designation_against_recist_is_refused_with_the_rule(personas, baseline, chosen, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        designation.designate(
            actor=personas["data_manager"], subject=baseline["subject"], roles=_roles(baseline, **chosen)
        )
    assert not Lesion.objects.filter(role=Lesion.TARGET).exists()
    assert not AuditEvent.objects.filter(action="lesion.designate").exists()


def test_more_than_five_targets_are_refused(personas, subjects):
    a = subjects["a"]
    base = report(a, 0)
    found = [lesion(a, f"L{n}", site=f"Organ {n}") for n in range(6)]
    for each in found:
        measure(base, each, 20)
    with pytest.raises(ValidationError, match="6 targets: RECIST 1.1 takes at most 5"):
        designation.designate(actor=personas["admin"], subject=a, roles={each.pk: "target" for each in found})


@pytest.mark.parametrize(
    ("sites", "nodes", "organ"),
    [
        (["Axillary lymph node", "Inguinal lymph node", "Mediastinal lymph node"], True, "Lymph nodes"),
        (["Upper lobe of left lung", "Right lung", "Lower lobe of right lung"], False, "Lung"),
        (["Left kidney structure", "Right kidney", "Kidney"], False, "Kidney"),
    ],
)
def test_nodes_and_paired_organs_count_as_one_organ(personas, subjects, sites, nodes, organ):
    a = subjects["a"]
    base = report(a, 0)
    found = [lesion(a, f"L{n}", site=site, node=nodes) for n, site in enumerate(sites)]
    for each in found:
        measure(base, each, 30, concepts.SHORT_AXIS if nodes else concepts.LONG_AXIS)
    with pytest.raises(ValidationError, match=f"{organ}: 3 targets"):
        designation.designate(actor=personas["admin"], subject=a, roles={each.pk: "target" for each in found})


def test_only_lesions_seen_at_baseline_are_designated(personas, baseline):
    with pytest.raises(ValidationError, match="seen at baseline"):
        designation.designate(actor=personas["admin"], subject=baseline["subject"], roles={999999: "target"})


@pytest.mark.parametrize("persona", ["pi", "monitor", "statistician", "coordinator_b", "outsider"])
def test_roles_without_data_entry_at_the_site_may_not_designate(personas, baseline, persona):
    with pytest.raises(PermissionDenied):
        designation.designate(
            actor=personas[persona], subject=baseline["subject"], roles=_roles(baseline, liver1="target")
        )


def test_a_coordinator_designates_at_their_own_site(personas, baseline):
    designation.designate(
        actor=personas["coordinator_a"], subject=baseline["subject"], roles=_roles(baseline, liver1="target")
    )
    assert Lesion.objects.get(pk=baseline["liver1"].pk).role == Lesion.TARGET


# ---------------------------------------------------------------------------- the page


def _url(name, subject):
    return reverse(name, args=[subject.study.slug, subject.subject_id])


def test_the_page_lists_baseline_lesions_and_saves_a_designation(client, personas, baseline):
    a = baseline["subject"]
    client.force_login(personas["data_manager"])
    page = client.get(_url("response:targets", a)).content.decode()
    assert "Save designation" in page and "node18" in page and "18.0" in page
    assert f"({a.enrollment_date.isoformat()})" in page  # an identified role: the real date
    posted = {f"role-{baseline['liver1'].pk}": "target", f"role-{baseline['lung'].pk}": "non_target"}
    answer = client.post(_url("response:designate", a), posted)
    assert answer.status_code == 302
    assert Lesion.objects.get(pk=baseline["lung"].pk).role == Lesion.NON_TARGET


def test_the_page_refuses_with_the_rule_and_changes_nothing(client, personas, baseline):
    client.force_login(personas["data_manager"])
    answer = client.post(
        _url("response:designate", baseline["subject"]), {f"role-{baseline['node12'].pk}": "target"}
    )
    assert answer.status_code == 400
    assert "short axis of at least 15 mm" in answer.content.decode()
    assert Lesion.objects.get(pk=baseline["node12"].pk).role == Lesion.UNDESIGNATED


def test_a_monitor_reads_the_page_with_shifted_dates_and_may_not_save(client, personas, baseline):
    a = baseline["subject"]
    client.force_login(personas["monitor"])
    page = client.get(_url("response:targets", a)).content.decode()
    shifted = a.enrollment_date + dt.timedelta(days=a.date_shift_days)
    assert f"({shifted.isoformat()}, shifted)" in page
    assert a.enrollment_date.isoformat() not in page
    assert "Save designation" not in page
    assert client.post(_url("response:designate", a), {}).status_code == 403


def test_another_sites_coordinator_and_another_study_do_not_see_the_page(client, personas, baseline):
    a = baseline["subject"]
    for persona in ("coordinator_b", "outsider"):
        client.force_login(personas[persona])
        assert client.get(_url("response:targets", a)).status_code == 404
        assert client.post(_url("response:designate", a), {}).status_code == 404


# ---------------------------------------------------------------------------- non-target statuses


@pytest.fixture
def with_non_target(personas, baseline):
    roles = _roles(baseline, liver1="target", liver2="target", node18="target", lung="non_target")
    designation.designate(actor=personas["admin"], subject=baseline["subject"], roles=roles)
    return baseline


def test_a_reader_marks_unequivocal_progression_of_a_non_target(client, personas, with_non_target):
    # Targets -53.4 % (PR), but the lung non-target progressed unequivocally at week 8: PD.
    a = with_non_target["subject"]
    week8 = MeasurementReport.objects.get(subject=a, event="week_8")
    client.force_login(personas["coordinator_a"])
    page = client.get(_url("response:targets", a)).content.decode()
    assert f'name="status-{with_non_target["lung"].pk}"' in page and "(from the measurements)" in page
    posted = {"report": week8.pk, f"status-{with_non_target['lung'].pk}": "progression"}
    assert client.post(_url("response:assess", a), posted).status_code == 302
    follow = TimepointResponse.objects.get(subject=a, day=56)
    assert (follow.target, follow.non_target, follow.overall) == ("PR", "PD", "PD")
    event = AuditEvent.objects.get(action="lesion.status")
    assert (event.before, event.after) == ({"lung": ""}, {"lung": "progression"})
    again = client.post(_url("response:assess", a), posted)  # the same status: nothing new
    assert again.status_code == 302 and LesionStatus.objects.count() == 1


def test_a_target_lesion_gets_no_reader_status(personas, with_non_target):
    a = with_non_target["subject"]
    week8 = MeasurementReport.objects.get(subject=a, event="week_8")
    with pytest.raises(ValidationError, match="non-target and new lesions"):
        designation.assess_lesions(
            actor=personas["admin"],
            subject=a,
            report=week8,
            statuses={with_non_target["liver1"].pk: "absent"},
        )


def test_a_monitor_may_not_assess_lesions(client, personas, with_non_target):
    a = with_non_target["subject"]
    week8 = MeasurementReport.objects.get(subject=a, event="week_8")
    client.force_login(personas["monitor"])
    posted = {"report": week8.pk, f"status-{with_non_target['lung'].pk}": "progression"}
    assert client.post(_url("response:assess", a), posted).status_code == 403
    assert not LesionStatus.objects.exists()


def test_a_locked_subject_keeps_its_designation(personas, baseline):
    from capture.records.services import set_subject_lock

    a = baseline["subject"]
    set_subject_lock(actor=personas["data_manager"], subject=a, locked=True, reason="Interim lock")
    with pytest.raises(ValidationError, match="is locked"):
        designation.designate(
            actor=personas["data_manager"], subject=a, roles=_roles(baseline, liver1="target")
        )
    assert Lesion.objects.get(pk=baseline["liver1"].pk).role == Lesion.UNDESIGNATED
