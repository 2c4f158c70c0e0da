import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging import dicomread
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import ImagingInstance, ImagingSeries, ImagingStudy
from capture.studies import pseudonyms

from .conftest import dicom_copy


def test_it_links_known_patients_and_queues_the_others(linked, study, dicom_tree):
    report = ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    assert (report.files, report.studies_new, report.linked, report.queued) == (7, 4, 3, 1)
    a = linked["a"]
    assert ImagingStudy.objects.filter(subject=a).count() == 3
    queued = ImagingStudy.objects.get(subject__isnull=True)
    assert queued.pending_date == dt.date(2025, 3, 10) and queued.study_date is None


def test_it_lists_unreadable_files_with_the_reason_and_goes_on(linked, study, dicom_tree):
    report = ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    reasons = {item["file"]: item["reason"] for item in report.unreadable}
    assert set(reasons) == {"README.txt", "damaged.dcm"}
    assert "not a DICOM file" in reasons["README.txt"]
    assert reasons["damaged.dcm"]


def test_reingesting_the_same_files_adds_nothing(linked, study, dicom_tree):
    ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    counts = (ImagingStudy.objects.count(), ImagingSeries.objects.count(), ImagingInstance.objects.count())
    again = ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    assert (again.studies_new, again.series_new, again.instances_new) == (0, 0, 0)
    assert counts == (
        ImagingStudy.objects.count(),
        ImagingSeries.objects.count(),
        ImagingInstance.objects.count(),
    )
    mr = ImagingStudy.objects.get(modalities="MR")
    assert (mr.series_count, mr.instance_count) == (1, 2)


def test_it_stores_shifted_dates_and_deidentified_uids_not_raw_identifiers(linked, study, dicom_tree):
    ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    a = linked["a"]
    ct = ImagingStudy.objects.get(subject=a, modalities="CT")
    assert ct.study_date == dt.date(2025, 3, 1) + dt.timedelta(days=a.date_shift_days)
    assert ct.day_offset() == 0
    assert ct.study_uid.startswith("2.25.")
    assert ct.patient_hash == pseudonyms.source_hash(study, "MRN-1001")
    stored = " ".join(str(v) for row in ImagingStudy.objects.values() for v in row.values())
    stored += " ".join(str(e.after) for e in AuditEvent.objects.all())
    assert "MRN-1001" not in stored and "MRN-2002" not in stored and "Doe" not in stored


def test_it_indexes_scanner_body_part_and_pet_dose(linked, study, dicom_tree):
    ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    pet = ImagingStudy.objects.get(modalities="PT")
    assert pet.radiopharmaceutical == "Fluorodeoxyglucose"
    assert pet.injected_dose_mbq == pytest.approx(370.0)
    ct = ImagingStudy.objects.get(modalities="CT", subject__isnull=False)
    assert ct.manufacturer == "GE MEDICAL SYSTEMS" and ct.series_count == 1 and ct.instance_count == 1
    assert ct.series.get().modality == "CT"


def test_it_writes_one_audit_event_per_ingest(linked, study, dicom_tree):
    ingest_folder(actor=SYSTEM, study=study, path=dicom_tree)
    event = AuditEvent.objects.get(action="imaging.ingest")
    assert event.after["studies_new"] == 4 and event.after["unreadable"] == 2


def test_worker_processes_read_the_same_headers_as_the_main_process(dicom_tree):
    paths = [str(p) for p in dicomread.list_files(dicom_tree)]
    inline = [r for chunk in dicomread.read_headers(paths, processes=1) for r in chunk]
    pooled = [r for chunk in dicomread.read_headers(paths, processes=2, min_for_pool=1) for r in chunk]
    assert inline == pooled


def test_a_later_ingest_links_a_new_study_of_an_assigned_patient(linked, study, tmp_path):
    dicom_copy(
        "CT_small.dcm", tmp_path / "x.dcm", patient_id="MRN-1001", study_date="20250601", study="later"
    )
    report = ingest_folder(actor=SYSTEM, study=study, path=tmp_path)
    assert report.linked == 1


def test_the_command_reports_counts_and_unreadable_files(linked, study, dicom_tree, capsys):
    call_command("ingest_dicom", str(dicom_tree), "--study", "trial")
    out, err = capsys.readouterr()
    assert "7 files: 4 new studies (3 linked, 1 queued)" in out
    assert "unreadable: README.txt: not a DICOM file" in err


def test_the_command_names_the_known_studies_when_given_a_wrong_one(study, tmp_path):
    with pytest.raises(CommandError, match="No study 'nope'; known studies: trial"):
        call_command("ingest_dicom", str(tmp_path), "--study", "nope")


def test_the_command_explains_an_empty_folder(study, tmp_path):
    with pytest.raises(CommandError, match="No files found"):
        call_command("ingest_dicom", str(tmp_path), "--study", "trial")
