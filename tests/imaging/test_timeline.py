import datetime as dt

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.imaging import services as imaging
from capture.imaging import svg, timeline
from capture.imaging.ingest import ingest_folder
from capture.records.services import save_record
from capture.studies import services

from ..conftest import ROOT
from .conftest import dicom_copy

ENROLLED = dt.date(2025, 3, 1)


@pytest.fixture
def tl(make_user, tmp_path):
    """A study on the timeline schedule: one patient with a treatment (day 0 to 42), response
    assessments on day 1 and 57, scans on day 0 (baseline), 58 (week 8) and 80 (no window)."""
    load_definitions([ROOT / "fixtures" / "imaging" / "definitions"], actor=SYSTEM)
    owner = make_user("tl_owner", is_staff=True)
    study = services.create_study(
        actor=owner, slug="tl", name="Timeline", schedule=Schedule.objects.get(name="imaging_timeline")
    )
    site = services.add_site(actor=owner, study=study, code="A", name="Site A")
    users = {}
    for name, role in (("coordinator", "coordinator"), ("statistician", "statistician")):
        users[name] = make_user(f"tl_{name}")
        services.grant_role(actor=SYSTEM, study=study, user=users[name], role=role, sites=[site])
    subject = services.enroll_subject(actor=SYSTEM, study=study, site=site, enrollment_date=ENROLLED)
    save_record(
        actor=SYSTEM,
        subject=subject,
        event_name="baseline",
        form_name="treatment",
        values={
            "agent": "Cisplatin",
            "treatment_start_date": "2025-03-01",
            "treatment_stop_date": "2025-04-12",
        },
    )
    save_record(
        actor=SYSTEM,
        subject=subject,
        event_name="baseline",
        form_name="response",
        values={"assessment_date": "2025-03-02"},
    )
    save_record(
        actor=SYSTEM,
        subject=subject,
        event_name="week_8",
        form_name="response",
        values={"assessment_date": "2025-04-27"},
    )
    imaging.add_identifier(actor=SYSTEM, subject=subject, kind="patient_id", value="TL-1")
    for day, name in ((0, "CT_small.dcm"), (58, "MR_small.dcm"), (80, "CT_small.dcm")):
        date = (ENROLLED + dt.timedelta(days=day)).strftime("%Y%m%d")
        dicom_copy(name, tmp_path / f"{day}.dcm", patient_id="TL-1", study_date=date, study=f"tl-{day}")
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    return {"study": study, "subject": subject, **users}


def test_it_puts_records_and_scans_on_one_axis_of_days_from_enrolment(tl):
    data = timeline.build(tl["coordinator"], tl["subject"])
    assert [(b.label, b.start_day, b.end_day) for b in data.treatments] == [("Treatment", 0, 42)]
    assert sorted(m.day for m in data.assessments) == [1, 57]
    assert [s.day for s in data.imaging] == [0, 58, 80]


def test_each_scan_is_matched_to_the_event_whose_window_holds_it(tl):
    data = timeline.build(tl["coordinator"], tl["subject"])
    assert [(s.day, s.event, s.in_window) for s in data.imaging] == [
        (0, "baseline", True),
        (58, "week_8", True),
        (80, None, False),
    ]


def test_roles_that_see_identifiers_get_real_dates_the_others_shifted_ones(tl):
    shift = tl["subject"].date_shift_days
    real = timeline.build(tl["coordinator"], tl["subject"])
    shifted = timeline.build(tl["statistician"], tl["subject"])
    assert real.enrollment_date == "2025-03-01" and not real.dates_shifted
    assert shifted.dates_shifted
    assert shifted.enrollment_date == (ENROLLED + dt.timedelta(days=shift)).isoformat()
    assert shifted.imaging[1].date == (ENROLLED + dt.timedelta(days=58 + shift)).isoformat()
    # The offsets, the point of one shift per subject, are the same for both.
    assert [s.day for s in real.imaging] == [s.day for s in shifted.imaging]
    assert [m.day for m in real.assessments] == [m.day for m in shifted.assessments]


def test_the_picture_draws_bars_marks_windows_and_hover_titles_without_script(tl):
    picture = svg.render(timeline.build(tl["statistician"], tl["subject"]))
    assert picture.startswith("<svg") and "<script" not in picture and "style=" not in picture
    assert picture.count('<g class="treatment">') == 1
    assert picture.count('class="assessment"') == 2
    assert picture.count('<g class="scan">') == 2 and picture.count('<g class="scan outside">') == 1
    assert "outside every schedule window" in picture
    assert "Week 8: day 56, window 49 to 63" in picture


def test_a_timeline_without_data_still_draws_the_schedule(study, subjects, personas):
    data = timeline.build(personas["admin"], subjects["b"])
    assert data.imaging == [] and [w.event for w in data.windows] == ["baseline", "week_8"]
    assert "<svg" in svg.render(data)
