"""Annex E gaps of the de-identified copies (issue 12, finding 7): times of action X, dates
outside Table E.1-1, files without their UIDs, duplicate SOP Instance UIDs, and check_deid on
Capture's own output."""

import datetime as dt

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging import deid
from capture.imaging.sharing import check_tree, deidentify_tree

from .conftest import dicom_copy


def _source(tmp_path, name="a.dcm", study="annex", **extra):
    return dicom_copy(
        "CT_small.dcm", tmp_path / "in" / name, patient_id="MRN-1001", study_date="20250310", study=study,
        **extra,
    )  # fmt: skip


def _copy(study, tmp_path):
    report = deidentify_tree(actor=SYSTEM, study=study, src=tmp_path / "in", dst=tmp_path / "out")
    return report, [pydicom.dcmread(p) for p in sorted((tmp_path / "out").rglob("*.dcm"))]


def _shifted(date: str, days: int) -> str:
    return (dt.datetime.strptime(date, "%Y%m%d").date() + dt.timedelta(days=days)).strftime("%Y%m%d")  # noqa: DTZ007


def test_times_of_action_x_such_as_the_birth_time_are_removed(linked, study, tmp_path):
    _source(tmp_path, PatientBirthTime="083015", PerformedProcedureStepStartTime="101500")
    _, [copy] = _copy(study, tmp_path)
    assert "PatientBirthTime" not in copy and "PerformedProcedureStepStartTime" not in copy
    assert copy.StudyTime  # a time the option keeps (action Z, emptied only without the option)


def test_check_deid_reports_a_birth_time_left_in_a_copy(linked, study, tmp_path):
    _source(tmp_path)
    _copy(study, tmp_path)
    path = next((tmp_path / "out").rglob("*.dcm"))
    ds = pydicom.dcmread(path)
    ds.PatientBirthTime = "083015"
    ds.save_as(path)
    _, problems = check_tree(path)
    assert [p for _, p in problems] == [
        "(0010,0032) PatientBirthTime: Annex E action X, time kept (only the times the option lists may stay)"
    ]


def test_dates_outside_table_e1_move_with_the_subject_shift_also_in_sequences(linked, study, tmp_path):
    item = Dataset()
    item.ExpiryDate = "20250401"  # (0014,1020): not in Table E.1-1
    item.StudyUpdateDateTime = "20250402101500"  # (0008,041F) DT: not in Table E.1-1
    item.CodeValue = "T-D3000"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Chest"
    _source(tmp_path, ExpiryDate="20250315", AnatomicRegionSequence=Sequence([item]))
    _, [copy] = _copy(study, tmp_path)
    days = linked["a"].date_shift_days
    assert days != 0
    assert copy.ExpiryDate == _shifted("20250315", days)
    inner = copy.AnatomicRegionSequence[0]
    assert inner.ExpiryDate == _shifted("20250401", days)
    assert inner.StudyUpdateDateTime == _shifted("20250402", days) + "101500"
    assert copy.StudyDate == _shifted("20250310", days)


def test_a_file_without_sop_uids_is_refused_by_name_and_the_run_still_audits(linked, study, tmp_path):
    _source(tmp_path, "a_good.dcm", study="good")
    bad = pydicom.dcmread(_source(tmp_path, "b_no_uids.dcm", study="bad"))
    del bad.SOPInstanceUID
    del bad.SOPClassUID
    del bad.file_meta.MediaStorageSOPInstanceUID
    del bad.file_meta.MediaStorageSOPClassUID
    bad.save_as(tmp_path / "in" / "b_no_uids.dcm")
    _source(tmp_path, "c_good.dcm", study="good2")
    report, copies = _copy(study, tmp_path)
    assert report.written == 2 and len(copies) == 2
    assert [r["file"] for r in report.refused] == ["b_no_uids.dcm"]
    assert "SOPInstanceUID, SOPClassUID" in report.refused[0]["reason"]
    event = AuditEvent.objects.get(action="imaging.deidentify")
    assert event.after["written"] == 2 and event.after["refused"] == 1
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".dcm"] == []


def test_two_sources_with_one_sop_uid_keep_the_first_and_report_the_second(linked, study, tmp_path):
    uid = pydicom.uid.generate_uid(entropy_srcs=["one sop"])
    _source(tmp_path, "a.dcm", SOPInstanceUID=uid, InstanceNumber=1)
    _source(tmp_path, "b.dcm", SOPInstanceUID=uid, InstanceNumber=2)
    report, copies = _copy(study, tmp_path)
    assert report.written == 1 and [c.InstanceNumber for c in copies] == [1]
    assert report.refused == [
        {"file": "b.dcm", "reason": "duplicate SOP Instance UID: a.dcm has the same one; the first was kept"}
    ]


def test_check_deid_finds_nothing_in_capture_s_own_copy_of_an_awkward_file(linked, study, tmp_path):
    other = Dataset()
    other.PatientID = "MRN-OLD-77"
    other.IssuerOfPatientID = "General Hospital"
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    referenced.ReferencedSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["ref"])
    path = _source(
        tmp_path,
        PatientBirthTime="083015",
        PatientBirthDate="19650703",
        OtherPatientIDsSequence=Sequence([other]),
        ReferencedImageSequence=Sequence([referenced]),
        AcquisitionDateTime="20250310101500.000000+0100",
        ExpiryDate="20250315",
    )
    ds = pydicom.dcmread(path)
    del ds.PatientName  # some writers leave it out; the copy must still be clean
    ds.save_as(path)
    report, [copy] = _copy(study, tmp_path)
    assert report.written == 1
    assert str(copy.PatientName) == copy.PatientID == "A-0001"
    assert check_tree(tmp_path / "out") == (1, [])


def test_deidentify_is_pure_header_work_for_a_single_dataset(study):
    ds = Dataset()
    ds.PatientID = "MRN-1"
    ds.PatientBirthTime = "083015"
    ds.ExpiryDate = "20250101"
    deid.deidentify(ds, study=study, subject_id="A-0009", shift_days=-1)
    assert "PatientBirthTime" not in ds and ds.ExpiryDate == "20241231" and str(ds.PatientName) == "A-0009"
