"""Measurement reports for the demo study: TID 1500 SRs written with highdicom over the demo's own
scans, ingested through the real path (de-identified, linked by the scan's PatientID, dated on the
subject's shifted calendar), then the baseline lesions designated as targets, so the timeline shows
RECIST 1.1 responses computed from them.

Each measured patient follows one of three courses (mm, long axis; the node on its short axis):

    course   lesion      baseline  day 58  day 120  day 182
    PR       L1 liver    32        22      18       17
             L2 lung     24        17      14       14
             N1 node     18        13      9        8
    SD       L1 liver    30        28      27       29
             L2 lung     20        19      19       20
    PD       L1 liver    28        24      31       38      + L3 (liver, 14 mm) new on day 120
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

LIVER = hd.sr.CodedConcept("10200004", "SCT", "Liver")
LUNG = hd.sr.CodedConcept("39607008", "SCT", "Lung")
NODE = hd.sr.CodedConcept("59441001", "SCT", "Lymph node")
DAYS = (-5, 58, 120, 182)  # the demo's scan days (capture/demo/imaging.py SCANS)
COURSES: dict[str, dict[str, tuple[hd.sr.CodedConcept, tuple[int | None, ...]]]] = {
    "PR": {
        "L1": (LIVER, (32, 22, 18, 17)),
        "L2": (LUNG, (24, 17, 14, 14)),
        "N1": (NODE, (18, 13, 9, 8)),
    },
    "SD": {"L1": (LIVER, (30, 28, 27, 29)), "L2": (LUNG, (20, 19, 19, 20))},
    "PD": {"L1": (LIVER, (28, 24, 31, 38)), "L3": (LIVER, (None, None, 14, 16))},
}
READER = "Demo^Reader"


def _group(image, lesion: str, site, mm: int, uid: str):
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [10.0 + mm, 10.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image),
    )
    concept = codes.SCT.ShortAxis if site is NODE else codes.SCT.LongAxis
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=lesion),
        referenced_region=region,
        finding_type=codes.SCT.Lesion,
        finding_sites=[hd.sr.FindingSite(site)],
        measurements=[hd.sr.Measurement(name=concept, value=mm, unit=codes.UCUM.Millimeter)],
    )


def write_report(image_path: Path, target: Path, *, course: str, scan: int, key: str) -> bool:
    """Write the SR of one scan (the `scan`-th of DAYS) of a patient on `course`; False when the
    course measures nothing on that scan."""
    image = pydicom.dcmread(image_path)
    patient = image.PatientID
    groups = [
        _group(
            image, lesion, site, sizes[scan] or 0, generate_uid(entropy_srcs=["demo-lesion", patient, lesion])
        )
        for lesion, (site, sizes) in COURSES[course].items()
        if sizes[scan] is not None
    ]
    if not groups:
        return False
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=READER),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    report = hd.sr.Comprehensive3DSR(
        evidence=[image],
        content=content,
        series_instance_uid=generate_uid(entropy_srcs=["demo-sr-series", key]),
        series_number=99,
        sop_instance_uid=generate_uid(entropy_srcs=["demo-sr", key]),
        instance_number=1,
        manufacturer="Capture demo",
        is_complete=True,
    )
    report.ContentDate = report.StudyDate = image.StudyDate
    target.parent.mkdir(parents=True, exist_ok=True)
    report.save_as(target)
    return True


def designate_baseline_targets(study, actor) -> int:
    """Every measured subject's baseline lesions become its targets (the course tables keep to
    RECIST's limits); returns how many subjects were designated."""
    from capture.measurements import designation
    from capture.measurements.compute import read_subject

    done = 0
    for subject in study.subjects.filter(lesions__isnull=False).distinct().order_by("pk"):
        baseline = designation.baseline_of(read_subject(subject))
        roles = {entry.lesion.pk: "target" for entry in baseline.lesions if not entry.not_measurable()}
        if roles:
            designation.designate(actor=actor, subject=subject, roles=roles)
            done += 1
    return done
