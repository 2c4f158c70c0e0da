import datetime as dt

import pydicom
import pytest
from django.core.management import CommandError, call_command

from capture.accounts.system import SYSTEM
from capture.imaging import deid, services
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import ImagingStudy, QuarantinedInstance
from capture.imaging.sharing import check_tree, deidentify_tree

from .conftest import dicom_copy

# Bundled pydicom test files of several modalities and encodings (all present offline).
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "waveform_ecg.dcm",
    "liver_1frame.dcm",
    "examples_overlay.dcm",
    "SC_rgb_rle.dcm",
    "MR_small_implicit.dcm",
    "ExplVR_BigEnd.dcm",
    "test-SR.dcm",
]


@pytest.fixture
def originals(linked, tmp_path):
    root = tmp_path / "originals"
    for index, name in enumerate(FILES):
        dicom_copy(
            name, root / f"{index:02d}_{name}", patient_id="MRN-1001", study_date="20250310", study="share",
            series=str(index), InstitutionName="General Hospital", ReferringPhysicianName="Dr^Who",
        )  # fmt: skip
    return root


# Images that commonly carry burned-in text and do not declare BurnedInAnnotation NO.
RISKY = ["02_JPEG2000.dcm", "08_SC_rgb_rle.dcm", "10_ExplVR_BigEnd.dcm"]  # SC class, OT, US


def test_copies_of_every_test_file_pass_check_deid_with_zero_findings(study, originals, tmp_path):
    report = deidentify_tree(actor=SYSTEM, study=study, src=originals, dst=tmp_path / "out")
    assert report.refused == [] and report.written == len(FILES) - len(RISKY)
    assert [q["file"] for q in report.quarantined] == RISKY
    checked, problems = check_tree(tmp_path / "out")
    assert checked == len(FILES) - len(RISKY)
    assert problems == []
    # Released after review, they are written too, and the whole tree still checks clean.
    for item in QuarantinedInstance.objects.all():
        services.decide_quarantine(
            actor=SYSTEM, item=item, release=True, reason="pixels checked, no burned-in text"
        )
    report = deidentify_tree(actor=SYSTEM, study=study, src=originals, dst=tmp_path / "out")
    assert report.written == len(FILES) and report.quarantined == []
    assert check_tree(tmp_path / "out") == (len(FILES), [])


def test_check_deid_reports_what_the_originals_still_carry(originals):
    checked, problems = check_tree(originals)
    found = "\n".join(f for _, f in problems)
    assert "Patient Identity Removed is not YES" in found
    assert "PatientName: Annex E action Z, PatientName and PatientID are not the same study id" in found
    assert "InstitutionName: Annex E action X/Z/D, still carries a value" in found
    assert "StudyInstanceUID: Annex E action U, UID not remapped" in found
    assert "private attribute present" in found


def test_the_copy_carries_the_subject_id_shifted_dates_and_no_private_tags(
    linked, study, originals, tmp_path
):
    deidentify_tree(actor=SYSTEM, study=study, src=originals, dst=tmp_path / "out")
    a = linked["a"]
    ds = pydicom.dcmread(next((tmp_path / "out" / "A-0001").rglob("*.dcm")))
    assert str(ds.PatientName) == "A-0001" and ds.PatientID == "A-0001"
    assert ds.StudyDate == (dt.date(2025, 3, 10) + dt.timedelta(days=a.date_shift_days)).strftime("%Y%m%d")
    assert ds.PatientIdentityRemoved == "YES"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert "InstitutionName" not in ds and "PatientBirthDate" not in ds or not ds.PatientBirthDate


def test_uids_are_remapped_consistently_and_match_capture_s_index(linked, study, originals, tmp_path):
    deidentify_tree(actor=SYSTEM, study=study, src=originals, dst=tmp_path / "out")
    copies = [pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    assert len({c.StudyInstanceUID for c in copies}) == 1, "one source study stays one study"
    assert all(c.file_meta.MediaStorageSOPInstanceUID == c.SOPInstanceUID for c in copies)
    ingest_folder(actor=SYSTEM, study=study, path=originals)
    assert ImagingStudy.objects.get(subject=linked["a"]).study_uid == copies[0].StudyInstanceUID


def test_a_file_with_burned_in_annotation_is_refused(linked, study, tmp_path):
    dicom_copy(
        "CT_small.dcm", tmp_path / "in" / "burned.dcm", patient_id="MRN-1001", study_date="20250310",
        study="burn", BurnedInAnnotation="YES",
    )  # fmt: skip
    report = deidentify_tree(actor=SYSTEM, study=study, src=tmp_path / "in", dst=tmp_path / "out")
    assert report.written == 0
    assert "BurnedInAnnotation is YES" in report.refused[0]["reason"]
    with pytest.raises(deid.RefusedError):
        deid.deidentify(
            pydicom.dcmread(tmp_path / "in" / "burned.dcm"), study=study, subject_id="X", shift_days=0
        )


def test_a_file_of_an_unlinked_patient_is_refused_with_the_fix(study, subjects, tmp_path):
    dicom_copy(
        "CT_small.dcm", tmp_path / "in" / "x.dcm", patient_id="MRN-404", study_date="20250310", study="x"
    )
    report = deidentify_tree(actor=SYSTEM, study=study, src=tmp_path / "in", dst=tmp_path / "out")
    assert report.written == 0 and "assign its study in the imaging queue" in report.refused[0]["reason"]


def test_the_commands_copy_then_check_clean(linked, study, originals, tmp_path, capsys):
    call_command("deidentify_dicom", str(originals), str(tmp_path / "out"), "--study", "trial")
    call_command("check_deid", str(tmp_path / "out"))
    out = capsys.readouterr().out
    assert f"{len(FILES) - len(RISKY)} de-identified files written" in out
    assert f"{len(RISKY)} quarantined for pixel review" in out
    assert f"{len(FILES) - len(RISKY)} files checked, 0 findings." in out


def test_check_deid_fails_on_originals(originals):
    with pytest.raises(CommandError, match="findings"):
        call_command("check_deid", str(originals))
