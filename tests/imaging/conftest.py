"""Imaging test helpers: DICOM files rewritten from pydicom's bundled test data, and a real
Orthanc with its DICOMweb plugin on 127.0.0.1 (skipped when missing, but failing under CI: see
tests/requirements.py)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from capture.accounts.system import SYSTEM
from capture.imaging import services as imaging
from tests import servers
from tests.requirements import need

from . import orthanc_server

ORTHANC_PLUGIN = orthanc_server.PLUGIN
ORTHANC_HOW = "apt-get install orthanc orthanc-dicomweb"


def dicom_copy(
    name: str, target: Path, *, patient_id: str, study_date: str, study: str, series: str = "1", **extra
) -> Path:
    """A copy of a bundled test file with its own PatientID, dates and UIDs. `study` and
    `series` seed the UIDs, so files given the same seeds land in the same study/series."""
    ds = pydicom.dcmread(get_testdata_file(name), force=True)  # a few lack the preamble, as real files do
    ds.PatientID = patient_id
    ds.PatientName = f"Doe^{patient_id}"
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        if keyword in ds:
            setattr(ds, keyword, study_date)
    ds.StudyDate = study_date
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study:{study}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series:{study}:{series}"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"sop:{study}:{series}:{target.name}"])
    if "MediaStorageSOPInstanceUID" in getattr(ds, "file_meta", {}):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def add_pet(path: Path, *, agent: str = "Fluorodeoxyglucose", dose_bq: float = 370e6) -> None:
    ds = pydicom.dcmread(path)
    ds.Modality = "PT"
    item = pydicom.Dataset()
    item.Radiopharmaceutical = agent
    item.RadionuclideTotalDose = dose_bq
    ds.RadiopharmaceuticalInformationSequence = pydicom.Sequence([item])
    ds.save_as(path)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    # Uploads are written under MEDIA_ROOT: keep them out of the work tree.
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def dicom_tree(tmp_path):
    """Patient MRN-1001 (subject A-0001 once registered): CT at baseline (day 0), MR twice in one
    study on day 58 (week 8 window), PET on day 20 (outside every window). Patient MRN-2002
    (unknown): one CT. Plus a text file and a damaged file, which must be listed as unreadable."""
    root = tmp_path / "incoming"
    dicom_copy(
        "CT_small.dcm", root / "p1" / "ct1.dcm", patient_id="MRN-1001", study_date="20250301", study="p1-ct"
    )
    dicom_copy(
        "MR_small.dcm", root / "p1" / "mr1.dcm", patient_id="MRN-1001", study_date="20250428", study="p1-mr"
    )
    dicom_copy(
        "MR_small.dcm", root / "p1" / "mr2.dcm", patient_id="MRN-1001", study_date="20250428", study="p1-mr"
    )
    pet = dicom_copy(
        "CT_small.dcm", root / "p1" / "pet.dcm", patient_id="MRN-1001", study_date="20250321", study="p1-pet"
    )
    add_pet(pet)
    dicom_copy(
        "CT_small.dcm", root / "p2" / "ct.dcm", patient_id="MRN-2002", study_date="20250310", study="p2-ct"
    )
    (root / "README.txt").write_text("not an image")
    damaged = root / "damaged.dcm"
    damaged.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    return root


@pytest.fixture
def linked(subjects):
    """Subject A-0001's PatientID registered (as a hash)."""
    imaging.add_identifier(actor=SYSTEM, subject=subjects["a"], kind="patient_id", value="MRN-1001")
    return subjects


_free_port = servers.free_port


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A throw-away Orthanc on 127.0.0.1 with DICOMweb at <url>/dicom-web; yields its base URL."""
    binary = orthanc_server.binary()
    need(binary, "the Orthanc binary", ORTHANC_HOW)
    need(ORTHANC_PLUGIN.exists(), f"Orthanc's DICOMweb plugin ({ORTHANC_PLUGIN})", ORTHANC_HOW)
    try:
        process, base = orthanc_server.start(tmp_path_factory.mktemp("orthanc"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield base
    servers.stop(process)


def upload_to_orthanc(base: str, path: Path) -> None:
    request = urllib.request.Request(  # noqa: S310 - local test server
        f"{base}/instances",
        data=path.read_bytes(),
        method="POST",
        headers={"Content-Type": "application/dicom"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local test server
        assert response.status == 200, f"Orthanc refused {path.name}: {response.status}"
