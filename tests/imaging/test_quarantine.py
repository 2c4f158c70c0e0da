"""Images whose pixels may show identifying text are quarantined, never shared silently
(issue 12, finding 6). The fixtures are small images written here with pydicom: an 8×8 US
image with no BurnedInAnnotation, as ultrasound scanners often write them."""

from pathlib import Path

import pydicom
import pytest
from django.urls import reverse
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.imaging import deid
from capture.imaging.models import QuarantinedInstance
from capture.imaging.sharing import check_tree, deidentify_tree

REASON = "pixels checked, no burned-in text"


def small_image(
    target: Path,
    *,
    modality: str = "US",
    sop_class: str = UltrasoundImageStorage,
    patient_id: str = "MRN-1001",
    seed: str = "us",
    burned_in: str | None = None,
    fill: int = 0,
) -> Path:
    """An 8×8 monochrome image of `modality`; BurnedInAnnotation only when `burned_in` is given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"sop:{seed}"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study:{seed}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series:{seed}"])
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = "DOE^JANE"
    ds.StudyDate = "20250310"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes([fill]) * 64
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target


@pytest.fixture
def ultrasound(linked, tmp_path):
    return small_image(tmp_path / "in" / "DOE_JANE_us.dcm")


def _run(study, tmp_path):
    return deidentify_tree(actor=SYSTEM, study=study, src=tmp_path / "in", dst=tmp_path / "out")


def test_an_ultrasound_without_burned_in_annotation_is_quarantined_not_copied(study, ultrasound, tmp_path):
    report = _run(study, tmp_path)
    assert report.written == 0 and report.refused == []
    assert [q["file"] for q in report.quarantined] == ["DOE_JANE_us.dcm"]
    assert list((tmp_path / "out").rglob("*.dcm")) == []
    held = QuarantinedInstance.objects.get()
    assert (held.status, held.subject.subject_id, held.modality) == ("pending", "A-0001", "US")
    assert held.sop_uid.startswith("2.25.")
    event = AuditEvent.objects.get(action="imaging.deidentify")
    assert event.after["quarantined"] == 1 and event.after["written"] == 0


def test_running_again_before_review_adds_no_second_entry(study, ultrasound, tmp_path):
    _run(study, tmp_path)
    report = _run(study, tmp_path)
    assert report.written == 0 and len(report.quarantined) == 1
    assert QuarantinedInstance.objects.count() == 1


@pytest.mark.parametrize(
    ("modality", "sop_class"),
    [
        ("US", UltrasoundImageStorage),
        ("SC", "1.2.840.10008.5.1.4.1.1.7"),
        ("OT", "1.2.840.10008.5.1.4.1.1.7"),
        ("XA", "1.2.840.10008.5.1.4.1.1.12.1"),
        ("ES", "1.2.840.10008.5.1.4.1.1.77.1.1"),
        ("CT", "1.2.840.10008.5.1.4.1.1.7.4"),  # a multi-frame secondary capture, whatever its modality
    ],
)
def test_every_kind_that_commonly_carries_burned_in_text_is_held(tmp_path, modality, sop_class):
    ds = pydicom.dcmread(small_image(tmp_path / "x.dcm", modality=modality, sop_class=sop_class))
    assert deid.burned_in_risk(ds)
    with pytest.raises(deid.QuarantinedError):
        deid.deidentify(ds, study=None, subject_id="A-0001", shift_days=-10)
    assert "PatientIdentityRemoved" not in ds


@pytest.mark.parametrize(
    ("modality", "sop_class", "burned_in"),
    [("US", UltrasoundImageStorage, "NO"), ("CT", CTImageStorage, None)],
)
def test_a_declared_clean_or_ordinary_image_is_not_held(tmp_path, modality, sop_class, burned_in):
    ds = pydicom.dcmread(
        small_image(tmp_path / "x.dcm", modality=modality, sop_class=sop_class, burned_in=burned_in)
    )
    assert deid.burned_in_risk(ds) == ""


def test_a_data_manager_releases_it_with_a_reason_and_the_next_run_writes_it(
    client, personas, study, ultrasound, tmp_path
):
    _run(study, tmp_path)
    held = QuarantinedInstance.objects.get()
    client.force_login(personas["data_manager"])
    page = client.get(reverse("imaging:quarantine", args=["trial"])).content.decode()
    assert "A-0001" in page and held.sop_uid in page and "Release" in page
    response = client.post(
        reverse("imaging:quarantine_decide", args=["trial", held.pk]),
        {"decision": "release", "reason": REASON},
        follow=True,
    )
    assert "released" in response.content.decode()
    event = AuditEvent.objects.get(action="imaging.quarantine.release")
    assert event.actor == personas["data_manager"] and event.reason == REASON
    assert event.after["status"] == "released"
    report = _run(study, tmp_path)
    assert report.written == 1 and report.quarantined == []
    copy = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert copy.BurnedInAnnotation == "NO" and copy.PatientIdentityRemoved == "YES"
    assert check_tree(tmp_path / "out") == (1, [])


def test_a_rejected_image_is_never_written(client, personas, study, ultrasound, tmp_path):
    _run(study, tmp_path)
    held = QuarantinedInstance.objects.get()
    client.force_login(personas["admin"])
    client.post(
        reverse("imaging:quarantine_decide", args=["trial", held.pk]),
        {"decision": "reject", "reason": "name burned into the top banner"},
    )
    assert AuditEvent.objects.filter(action="imaging.quarantine.reject").count() == 1
    report = _run(study, tmp_path)
    assert report.written == 0
    assert (
        "rejected in the imaging quarantine: name burned into the top banner" in report.refused[0]["reason"]
    )


def test_a_decision_needs_a_reason_and_the_import_right(client, personas, study, ultrasound, tmp_path):
    _run(study, tmp_path)
    held = QuarantinedInstance.objects.get()
    url = reverse("imaging:quarantine_decide", args=["trial", held.pk])
    for persona in ("statistician", "monitor", "coordinator_a"):
        client.force_login(personas[persona])
        assert client.post(url, {"decision": "release", "reason": REASON}).status_code == 403
        assert client.get(reverse("imaging:quarantine", args=["trial"])).status_code == 403
    client.force_login(personas["data_manager"])
    response = client.post(url, {"decision": "release", "reason": "  "}, follow=True)
    assert "Say what you checked" in response.content.decode()
    held.refresh_from_db()
    assert held.status == "pending"
    assert not AuditEvent.objects.filter(action__startswith="imaging.quarantine").exists()


def test_changed_pixels_after_a_release_wait_for_review_again(client, personas, study, ultrasound, tmp_path):
    from capture.imaging import services

    _run(study, tmp_path)
    services.decide_quarantine(
        actor=SYSTEM, item=QuarantinedInstance.objects.get(), release=True, reason=REASON
    )
    small_image(ultrasound, fill=200)  # same image UIDs, other pixels
    report = _run(study, tmp_path)
    assert report.written == 0 and len(report.quarantined) == 1
    assert QuarantinedInstance.objects.get().status == "pending"


def test_check_deid_reports_an_undeclared_ultrasound_another_tool_shared(study, ultrasound, tmp_path):
    ds = pydicom.dcmread(ultrasound)
    deid.deidentify(ds, study=study, subject_id="A-0001", shift_days=-10, pixels_reviewed=True)
    del ds.BurnedInAnnotation  # as a tool that does not look at pixels writes it
    ds.save_as(tmp_path / "shared.dcm")
    checked, problems = check_tree(tmp_path / "shared.dcm")
    assert checked == 1
    assert problems == [
        (
            "shared.dcm",
            "(0028,0301) BurnedInAnnotation: a US image commonly carries burned-in text and "
            "BurnedInAnnotation is not NO",
        )
    ]
