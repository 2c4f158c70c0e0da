"""Imaging for the demo study: DICOM files made from pydicom's bundled test data, ingested
through the real path (headers, hashes, shifted dates), so the timeline shows scans.

`seed_imaging(study)` is called by `study.seed` (`manage.py seed_demo`) after the records exist.
Most patients get a registered PatientID and link by themselves; two patients' studies are left
in the queue for the data manager to assign. The first `measured` linked patients also get a
measurement report (DICOM SR, TID 1500) per scan, and their baseline lesions are designated as
targets, so their timelines show RECIST responses (capture/demo/measurements.py).
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import zlib
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from capture.accounts.system import SystemActor
from capture.imaging import services
from capture.imaging.ingest import ingest_folder

from . import measurements

DEMO = SystemActor(label="system: demo")  # the seed's actor: audit events say the demo made them

# (days from enrolment, test file, modality): baseline CT, PET/CT on treatment, MR at follow-up,
# and one scan between windows so the timeline shows "outside every window".
SCANS = [
    (-5, "CT_small.dcm", "CT"),
    (58, "CT_small.dcm", "PT"),
    (120, "MR_small.dcm", "MR"),
    (182, "MR_small.dcm", "MR"),
]


def _write(path: Path, name: str, modality: str, patient_id: str, date: dt.date, key: str) -> None:
    source = get_testdata_file(name)
    assert isinstance(source, str)  # a file of pydicom's test data, by name
    ds = pydicom.dcmread(source)
    ds.PatientID = patient_id
    ds.PatientName = f"DEMO^{patient_id}"
    ds.AccessionNumber = f"ACC{zlib.crc32(key.encode()):010d}"
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, keyword, date.strftime("%Y%m%d"))
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["demo-study", key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["demo-series", key])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["demo-sop", key])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    if modality == "PT":
        item = pydicom.Dataset()
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        item.RadionuclideTotalDose = 370e6
        ds.RadiopharmaceuticalInformationSequence = pydicom.Sequence([item])
        ds.StudyDescription = "PET/CT FDG whole body"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)


def seed_imaging(
    study, *, patients: int = 12, queued: int = 2, measured: int = 6, seed_value: int = 11
) -> services.IngestReport:
    rng = random.Random(seed_value)
    subjects = list(study.subjects.patients().order_by("pk")[: patients + queued])
    with tempfile.TemporaryDirectory(prefix="capture-demo-dicom-") as tmp:
        for index, subject in enumerate(subjects):
            patient_id = f"MRN{100000 + subject.pk}"
            if index < patients:
                services.add_identifier(actor=DEMO, subject=subject, kind="patient_id", value=patient_id)
            for day, name, modality in SCANS:
                when = subject.enrollment_date + dt.timedelta(days=day + rng.randint(-2, 2))
                if when > dt.date.today():  # noqa: DTZ011 - demo dates are calendar dates
                    continue
                key = f"{study.slug}:{subject.subject_id}:{day}"
                image = Path(tmp) / subject.subject_id / f"{day}.dcm"
                _write(image, name, modality, patient_id, when, key)
                if index < min(measured, patients):
                    course = ("PR", "SD", "PD")[index % 3]
                    scan = [d for d, _, _ in SCANS].index(day)
                    measurements.write_report(
                        image, image.with_suffix(".sr.dcm"), course=course, scan=scan, key=key
                    )
        report = ingest_folder(actor=DEMO, study=study, path=Path(tmp))
    measurements.designate_baseline_targets(study, DEMO)
    return report
