"""Measurement reports through the imaging ingest: linkage to subject and timepoint, the queue,
de-identification of SR content and of the stored copy, per-file refusals, idempotence."""

import datetime as dt
from decimal import Decimal

import pydicom
import pytest

from capture import storage
from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging import deid
from capture.imaging import services as imaging
from capture.imaging.ingest import ingest_folder
from capture.imaging.models import ImagingStudy
from capture.measurements.models import Lesion, Measurement, MeasurementReport

from . import srfixtures


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def series(tmp_path):
    srfixtures.patient_series(tmp_path / "in")
    return tmp_path / "in"


@pytest.fixture
def registered(subjects):
    imaging.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="patient_id", value=srfixtures.PATIENT)
    return subjects["a"]


def stored_copy(report) -> pydicom.Dataset:
    with storage.local_copy(storage.IMAGES, report.storage_name) as path:
        return pydicom.dcmread(path)


@pytest.mark.django_db
def test_a_folder_of_reports_links_to_the_subject_and_its_timepoints(study, registered, series):
    result = ingest_folder(actor=SYSTEM, study=study, path=series)
    assert result.measurements["stored"] == 3 and result.measurements["linked"] == 3
    reports = list(MeasurementReport.objects.filter(subject=registered).order_by("report_date"))
    assert [r.event for r in reports] == ["baseline", "week_8", ""]  # day 112 is in no window
    assert [r.day_offset() for r in reports] == [0, 56, 112]
    assert reports[0].report_date == dt.date(2025, 3, 1) + dt.timedelta(days=registered.date_shift_days)
    roles = dict(Lesion.objects.filter(subject=registered).values_list("tracking_id", "role"))
    assert roles == {"L1": "undesignated", "L2": "undesignated", "N1": "undesignated", "L4": "new"}
    assert Lesion.objects.get(subject=registered, tracking_id="N1").is_node
    assert Measurement.objects.filter(report__subject=registered).count() == 13
    short = Measurement.objects.get(report=reports[2], lesion__tracking_id="N1", concept_code="103340004")
    assert (short.value, short.unit, short.concept_scheme) == (Decimal("8"), "mm", "SCT")


@pytest.mark.django_db
def test_the_images_are_indexed_and_the_reports_are_not(study, registered, series):
    ingest_folder(actor=SYSTEM, study=study, path=series)
    assert ImagingStudy.objects.filter(subject=registered).count() == 3
    assert not ImagingStudy.objects.filter(modalities__contains="SR").exists()
    report = MeasurementReport.objects.filter(subject=registered).order_by("report_date").first()
    assert report.imaging_study.subject == registered  # read on the linked CT study
    value = report.measurements.first()
    assert value.referenced_series_uid in set(
        report.imaging_study.series.values_list("series_uid", flat=True)
    )


@pytest.mark.django_db
def test_no_identifier_of_the_report_is_stored(study, registered, series):
    ingest_folder(actor=SYSTEM, study=study, path=series)
    raw = {str(pydicom.dcmread(p).SOPInstanceUID) for p in (series / "sr").iterdir()}
    reports = MeasurementReport.objects.all()
    assert not raw & set(reports.values_list("sop_uid", flat=True))
    assert all(r.sop_uid.startswith("2.25.") and r.series_uid.startswith("2.25.") for r in reports)
    assert {r.observer for r in reports} == {reports[0].observer} and reports[0].observer.startswith(
        "Reader "
    )
    lesion = Lesion.objects.get(tracking_id="L1")
    assert lesion.tracking_uid.startswith("2.25.")
    assert lesion.tracking_uid != srfixtures.tracking_uid(srfixtures.PATIENT, "L1")
    events = " ".join(str(e.after) + e.object_label for e in AuditEvent.objects.all())
    assert "Smith" not in events and srfixtures.PATIENT not in events


@pytest.mark.django_db
def test_the_stored_copy_is_de_identified_with_the_subjects_shift_and_keeps_the_measurements(
    study, registered, series
):
    ingest_folder(actor=SYSTEM, study=study, path=series)
    report = MeasurementReport.objects.filter(subject=registered).order_by("report_date").first()
    assert report.storage_name.startswith(f"deid/{study.slug}/{registered.subject_id}/")
    ds = stored_copy(report)
    text = str(ds)
    assert "Smith" not in text and srfixtures.PATIENT not in text
    assert ds.PatientID == registered.subject_id and ds.SOPInstanceUID == report.sop_uid
    shifted = dt.date(2025, 3, 1) + dt.timedelta(days=registered.date_shift_days)
    assert ds.StudyDate == shifted.strftime("%Y%m%d")
    assert "Long axis" in text and "L1" in text  # measurements and tracking identifiers stay
    assert "113104" in text  # the Clean Structured Content option is declared
    # check_deid still names the content sequence (Annex E says D; the SR's is cleaned item by item):
    # everything else of the copy passes the images' check.
    assert [f for f in deid.findings(ds) if "ContentSequence" not in f] == []


@pytest.mark.django_db
def test_malformed_reports_are_refused_by_name_and_nothing_of_them_is_written(study, registered, tmp_path):
    srfixtures.malformed(tmp_path / "bad")
    result = ingest_folder(actor=SYSTEM, study=study, path=tmp_path / "bad")
    reasons = {item["file"]: item["reason"] for item in result.unreadable}
    assert set(reasons) == {"template.dcm", "references.dcm", "unit.dcm"}
    assert "not TID 1500" in reasons["template.dcm"]
    assert "missing references" in reasons["references.dcm"]
    assert "UCUM" in reasons["unit.dcm"]
    assert not MeasurementReport.objects.exists() and not Lesion.objects.exists()
    assert not ImagingStudy.objects.exists()
    assert not storage.names_under(storage.IMAGES, f"deid/{study.slug}/{registered.subject_id}")


@pytest.mark.django_db
def test_ingesting_the_same_reports_again_adds_nothing(study, registered, series):
    ingest_folder(actor=SYSTEM, study=study, path=series)
    before = (MeasurementReport.objects.count(), Measurement.objects.count(), AuditEvent.objects.count())
    again = ingest_folder(actor=SYSTEM, study=study, path=series)
    assert again.measurements["already"] == 3 and again.measurements["stored"] == 0
    after = (MeasurementReport.objects.count(), Measurement.objects.count())
    assert after == before[:2]


@pytest.mark.django_db
def test_an_unknown_patients_reports_wait_in_the_queue_with_their_values(study, subjects, series):
    result = ingest_folder(actor=SYSTEM, study=study, path=series / "sr")
    assert result.measurements["queued"] == 3
    queued = MeasurementReport.objects.filter(subject__isnull=True).order_by("pending_date")
    assert [r.pending_date for r in queued] == [srfixtures.day(d) for d in srfixtures.DATES.values()]
    assert len(queued[0].pending_values) == 4 and not Measurement.objects.exists()
    assert queued[0].storage_name.startswith(f"deid-pending/{study.slug}/")


@pytest.mark.django_db
def test_registering_the_patients_identifier_links_the_queued_reports(
    study, subjects, series, django_capture_on_commit_callbacks
):
    ingest_folder(actor=SYSTEM, study=study, path=series / "sr")
    a = subjects["a"]
    with django_capture_on_commit_callbacks(execute=True):  # the queued copies go once committed
        imaging.add_identifier(actor=SYSTEM, subject=a, kind="patient_id", value=srfixtures.PATIENT)
    reports = MeasurementReport.objects.filter(subject=a).order_by("report_date")
    assert reports.count() == 3 and not MeasurementReport.objects.filter(subject__isnull=True).exists()
    assert Lesion.objects.get(subject=a, tracking_id="L4").role == "new"
    first = reports.first()
    assert first.event == "baseline" and first.storage_name.startswith(f"deid/{study.slug}/{a.subject_id}/")
    ds = stored_copy(first)
    shifted = dt.date(2025, 3, 1) + dt.timedelta(days=a.date_shift_days)
    assert (ds.PatientID, ds.StudyDate) == (a.subject_id, shifted.strftime("%Y%m%d"))
    assert not storage.names_under(storage.IMAGES, f"deid-pending/{study.slug}")


@pytest.mark.django_db
def test_a_report_without_a_known_patient_links_through_the_imaging_study_it_was_read_on(
    study, subjects, tmp_path
):
    root = tmp_path / "in"
    srfixtures.patient_series(root, patient_id="MRN-IMG")
    ingest_folder(actor=SYSTEM, study=study, path=root / "images")
    ct = ImagingStudy.objects.unassigned().order_by("pending_date").first()
    imaging.assign_study(actor=SYSTEM, imaging_study=ct, subject=subjects["b"])
    for path in (root / "sr").iterdir():  # the reports say nothing of the patient
        ds = pydicom.dcmread(path)
        ds.PatientID = ""
        ds.save_as(path)
    ingest_folder(actor=SYSTEM, study=study, path=root / "sr")
    assert MeasurementReport.objects.filter(subject=subjects["b"]).count() == 3


# ------------------------------------------------------------------------------- DICOMweb


@pytest.fixture(scope="module")
def sr_archive(tmp_path_factory):
    """An Orthanc of its own (the imaging tests count the studies of theirs) holding the patient's
    CTs and reports, sent by STOW-RS as a workstation would. Returns the DICOMweb base URL."""
    from tests import servers
    from tests.imaging import orthanc_server
    from tests.imaging.conftest import ORTHANC_HOW, ORTHANC_PLUGIN
    from tests.requirements import need

    need(orthanc_server.binary(), "the Orthanc binary", ORTHANC_HOW)
    need(ORTHANC_PLUGIN.exists(), f"Orthanc's DICOMweb plugin ({ORTHANC_PLUGIN})", ORTHANC_HOW)
    try:
        process, base = orthanc_server.start(tmp_path_factory.mktemp("orthanc-sr"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    from dicomweb_client.api import DICOMwebClient

    root = tmp_path_factory.mktemp("sr-archive")
    files = srfixtures.patient_series(root)
    client = DICOMwebClient(url=f"{base}/dicom-web")
    client.store_instances([pydicom.dcmread(p) for p in [*files, *sorted((root / "images").iterdir())]])
    yield f"{base}/dicom-web"
    servers.stop(process)


@pytest.mark.django_db
def test_dicomweb_linking_retrieves_the_reports_and_stores_them(sr_archive, settings, study, registered):
    from capture.imaging import dicomweb

    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"orthanc": sr_archive}}
    result = dicomweb.link(actor=SYSTEM, study=study, server="orthanc")
    assert result["studies_found"] == 3 and result["linked"] == 3
    assert result["measurements"]["stored"] == 3 and result["measurements"]["linked"] == 3
    assert MeasurementReport.objects.filter(subject=registered, source__startswith="dicomweb").count() == 3
    assert not ImagingStudy.objects.filter(series__modality="SR").exists()
    assert Lesion.objects.get(subject=registered, tracking_id="L4").role == "new"
    again = dicomweb.link(actor=SYSTEM, study=study, server="orthanc")
    assert again["measurements"]["already"] == 3


@pytest.mark.django_db
def test_the_ingest_command_reports_the_measurement_reports(study, registered, series, tmp_path, capsys):
    from django.core.management import call_command

    srfixtures.malformed(series / "bad")
    call_command("ingest_dicom", str(series), study="trial")
    out, err = capsys.readouterr()
    assert "Measurement reports: 3 stored (3 linked, 0 queued), 0 already stored, 3 refused." in out
    assert "unreadable: bad/unit.dcm: measurement report refused: measurement group 1 (L1)" in err


@pytest.mark.django_db
def test_sharing_a_folder_leaves_the_reports_to_their_own_cleaned_copy(study, registered, series, tmp_path):
    from capture.imaging.sharing import deidentify_tree

    ingest_folder(actor=SYSTEM, study=study, path=series)
    copies = deidentify_tree(actor=SYSTEM, study=study, src=series, dst=tmp_path / "out")
    assert copies.written == 3  # the three CTs; an Annex E copy of an SR would lose its measurements
    assert {r["file"] for r in copies.refused} == {"sr/baseline.dcm", "sr/fu1.dcm", "sr/fu2.dcm"}
    assert all("kept with its measurement report" in r["reason"] for r in copies.refused)
