"""Imaging pages show DICOM free text and dates only as the study's disclosure policy allows
(issue 12, finding 5): StudyDescription and SeriesDescription (PS3.15 Annex E action X) never
reach a role without `view_identifiers`, on any page or in the timeline JSON."""

import datetime as dt

import pytest
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.imaging import timeline
from capture.imaging.ingest import ingest_folder

from .conftest import dicom_copy

STUDY_TEXT = "CT chest for DOE JANE MRN 4471"
SERIES_TEXT = "Axial DOE JANE 1965-07-03"
REAL_DATE = "2025-03-05"


@pytest.fixture
def described(linked, study, tmp_path):
    dicom_copy(
        "CT_small.dcm", tmp_path / "in" / "ct.dcm", patient_id="MRN-1001", study_date="20250305",
        study="desc", StudyDescription=STUDY_TEXT, SeriesDescription=SERIES_TEXT,
    )  # fmt: skip
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path / "in")
    return linked


def _pages():
    return [
        reverse("imaging:list", args=["trial"]),
        reverse("imaging:timeline", args=["trial", "A-0001"]),
        reverse("imaging:timeline_json", args=["trial", "A-0001"]),
    ]


@pytest.mark.parametrize("persona", ["statistician", "monitor"])
def test_de_identified_roles_never_see_dicom_free_text_or_the_real_scan_date(
    client, personas, described, persona
):
    client.force_login(personas[persona])
    shifted = (dt.date(2025, 3, 5) + dt.timedelta(days=described["a"].date_shift_days)).isoformat()
    for url in _pages():
        body = client.get(url).content.decode()
        assert "DOE JANE" not in body and "4471" not in body, url
        assert REAL_DATE not in body, url
    assert shifted in client.get(reverse("imaging:list", args=["trial"])).content.decode()


def test_roles_that_see_identifiers_see_the_description_and_the_real_date(client, personas, described):
    client.force_login(personas["data_manager"])
    for url in _pages():
        body = client.get(url).content.decode()
        assert STUDY_TEXT in body and REAL_DATE in body, url


def test_the_queue_shows_the_description_through_the_policy(client, personas, study, subjects, tmp_path):
    dicom_copy(
        "CT_small.dcm", tmp_path / "q.dcm", patient_id="MRN-77", study_date="20250305", study="q",
        StudyDescription=STUDY_TEXT,
    )  # fmt: skip
    ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    client.force_login(personas["data_manager"])
    assert STUDY_TEXT in client.get(reverse("imaging:queue", args=["trial"])).content.decode()


def test_the_timeline_data_withholds_the_description_for_de_identified_roles(personas, described):
    hidden = timeline.build(personas["statistician"], described["a"])
    shown = timeline.build(personas["coordinator_a"], described["a"])
    assert [s.description for s in hidden.imaging] == [""]
    assert [s.description for s in shown.imaging] == [STUDY_TEXT]
    assert hidden.dates_shifted and not shown.dates_shifted
