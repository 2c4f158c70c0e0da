"""TID 1500 Measurement Reports written with highdicom over pydicom's bundled test CT, for the
tests and the benchmark (nothing binary is committed: every file is made in a temporary folder).

`patient_series(root)` writes one patient's baseline and two follow-ups, each a CT image and the
SR that measures it: lesions L1 (liver), L2 (lung) and N1 (a lymph node, long and short axis);
follow-up 2 adds the new lesion L4. The numbers (mm) are chosen by hand:

    lesion  site           baseline   follow-up 1   follow-up 2
    L1      liver          30         24            20
    L2      lung           22         18            15
    N1      lymph node     25 / 15    20 / 11       18 / 8      (long / short axis)
    L4      liver          -          -             12          (new at follow-up 2)

`malformed(root)` writes the three ways a report is refused: wrong template, missing references,
a unit outside UCUM.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

PATIENT = "MRN-SR-1"
READER = "Smith^Jane"
DATES = {"baseline": "20250301", "fu1": "20250426", "fu2": "20250621"}  # days 0, 56, 112
LIVER = hd.sr.CodedConcept("10200004", "SCT", "Liver")
LUNG = hd.sr.CodedConcept("39607008", "SCT", "Lung")
NODE = hd.sr.CodedConcept("59441001", "SCT", "Lymph node")
LESIONS = {
    # id: (site, {timepoint: (long, short or None)})
    "L1": (LIVER, {"baseline": (30, None), "fu1": (24, None), "fu2": (20, None)}),
    "L2": (LUNG, {"baseline": (22, None), "fu1": (18, None), "fu2": (15, None)}),
    "N1": (NODE, {"baseline": (25, 15), "fu1": (20, 11), "fu2": (18, 8)}),
    "L4": (LIVER, {"fu2": (12, None)}),
}


def ct_image(target: Path, *, patient_id: str, study_date: str, seed: str) -> pydicom.Dataset:
    """A copy of CT_small with its own patient, date and UIDs (the image the SR measures)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = patient_id
    ds.PatientName = f"Doe^{patient_id}"
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, keyword, study_date)
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study:{seed}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series:{seed}"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"sop:{seed}"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return ds


def lesion_group(image, lesion: str, site, long_mm, short_mm, uid: str, unit=None):
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [40.0, 10.0], [40.0, 30.0], [10.0, 10.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image),
    )
    unit = unit or codes.UCUM.Millimeter
    measurements = [hd.sr.Measurement(name=codes.SCT.LongAxis, value=long_mm, unit=unit)]
    if short_mm is not None:
        measurements.append(hd.sr.Measurement(name=codes.SCT.ShortAxis, value=short_mm, unit=unit))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=lesion),
        referenced_region=region,
        finding_type=codes.SCT.Lesion,
        finding_sites=[hd.sr.FindingSite(site)],
        measurements=measurements,
    )


def measurement_report(
    image, groups, *, seed: str, observer: str = READER, series_number: int = 99
) -> hd.sr.Comprehensive3DSR:
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=observer),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[image],
        content=content,
        series_instance_uid=generate_uid(entropy_srcs=[f"sr-series:{seed}"]),
        series_number=series_number,
        sop_instance_uid=generate_uid(entropy_srcs=[f"sr:{seed}"]),
        instance_number=1,
        manufacturer="Capture tests",
        is_complete=True,
    )
    sr.ContentDate = image.StudyDate
    return sr


def tracking_uid(patient_id: str, lesion: str) -> str:
    return generate_uid(entropy_srcs=[f"track:{patient_id}:{lesion}"])


def patient_series(root: Path, *, patient_id: str = PATIENT, with_images: bool = True) -> list[Path]:
    """One patient's three reports (and, with `with_images`, the CT each one measures)."""
    written = []
    for timepoint, date in DATES.items():
        seed = f"{patient_id}:{timepoint}"
        image_path = root / "images" / f"{timepoint}.dcm"
        image = ct_image(image_path, patient_id=patient_id, study_date=date, seed=seed)
        if not with_images:
            image_path.unlink()
        groups = [
            lesion_group(image, lesion, site, *values[timepoint], uid=tracking_uid(patient_id, lesion))
            for lesion, (site, values) in LESIONS.items()
            if timepoint in values
        ]
        target = root / "sr" / f"{timepoint}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        measurement_report(image, groups, seed=seed).save_as(target)
        written.append(target)
    return written


def one_report(target: Path, *, patient_id: str, date: str, seed: str, lesions: int = 3) -> Path:
    """A single report of `lesions` lesions (for the benchmark and the queue tests)."""
    image = ct_image(target.with_suffix(".ct.tmp"), patient_id=patient_id, study_date=date, seed=seed)
    target.with_suffix(".ct.tmp").unlink()
    groups = [
        lesion_group(image, f"L{i}", LIVER, 20 + i, None, uid=tracking_uid(patient_id, f"L{i}"))
        for i in range(1, lesions + 1)
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    measurement_report(image, groups, seed=seed).save_as(target)
    return target


def malformed(root: Path) -> dict[str, Path]:
    """{reason: file}: a wrong template, missing references, a unit that is not UCUM."""
    root.mkdir(parents=True, exist_ok=True)
    image = ct_image(root / "ct.tmp", patient_id=PATIENT, study_date=DATES["baseline"], seed="bad")
    (root / "ct.tmp").unlink()
    good = [lesion_group(image, "L1", LIVER, 30, None, uid=tracking_uid(PATIENT, "L1"))]

    wrong = measurement_report(image, good, seed="bad:template")
    wrong.ContentTemplateSequence[0].TemplateIdentifier = "2000"  # Basic Diagnostic Imaging Report

    unreferenced = measurement_report(image, good, seed="bad:refs")
    del unreferenced.CurrentRequestedProcedureEvidenceSequence

    mmhg = hd.sr.CodedConcept("mm[Hg]", "99LOCAL", "millimetre of mercury")  # a local scheme, not UCUM
    not_ucum = measurement_report(
        image,
        [lesion_group(image, "L1", LIVER, 30, None, uid=tracking_uid(PATIENT, "L1"), unit=mmhg)],
        seed="bad:unit",
    )
    files = {"template": wrong, "references": unreferenced, "unit": not_ucum}
    paths = {}
    for reason, ds in files.items():
        paths[reason] = root / f"{reason}.dcm"
        ds.save_as(paths[reason])
    return paths


def day(date: str) -> dt.date:
    return dt.datetime.strptime(date, "%Y%m%d").date()  # noqa: DTZ007 - a DICOM calendar date
