"""Reading DICOM Measurement Reports (SR, template TID 1500) with highdicom.

This module runs in the ingest's worker processes (as capture/imaging/dicomread.py does), so it
imports neither Django nor anything that does: it returns plain values, identifiers still raw.
The caller (capture/measurements/ingest.py) hashes, remaps and stores them.

A report is read whole or refused whole: `read_report(path)` returns a `ParsedReport`, or a
`Failure` whose reason names what is wrong and how to fix it. RefusedError: a file that is not an SR,
an SR that is not a TID 1500 Measurement Report, a measurement group whose image is not among the
report's evidence (missing references), a measurement whose unit is not coded in UCUM.

A lesion is a lymph node (measured on its short axis under RECIST 1.1) when its finding or its
finding site is one of `NODE_CODES` (SNOMED CT), or any SNOMED CT concept whose meaning names a
lymph node (the many node stations of CID 7600, e.g. 68171009 "Axillary lymph node").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

UCUM = "UCUM"
TID_1500 = "1500"
TRACKING_IDENTIFIER = "112039"  # DCM "Tracking Identifier": a TEXT item that is not free text
TRACKING_UID = "112040"  # DCM "Tracking Unique Identifier"
FINDING = "121071"  # DCM "Finding"
FINDING_SITE = "363698007"  # SCT "Finding Site"
PERSON_OBSERVER_NAME = "121008"  # DCM
DEVICE_OBSERVER_UID = "121012"  # DCM
# SR storage classes: Basic Text, Enhanced, Comprehensive, Comprehensive 3D, Extensible SR.
SR_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",
        "1.2.840.10008.5.1.4.1.1.88.22",
        "1.2.840.10008.5.1.4.1.1.88.33",
        "1.2.840.10008.5.1.4.1.1.88.34",
        "1.2.840.10008.5.1.4.1.1.88.35",
    }
)
NODE_CODES = {
    "59441001": "Lymph node structure",
    "30746006": "Lymphadenopathy",
}
NODE_WORDS = ("lymph node", "lymphadenopathy")


@dataclass(frozen=True)
class Code:
    scheme: str
    code: str
    meaning: str


@dataclass(frozen=True)
class RawValue:
    """One measurement of one measurement group, identifiers as the file gives them."""

    tracking_id: str
    tracking_uid: str
    concept: Code
    value: Decimal
    unit: str
    derivation: str = ""
    finding: Code | None = None
    site: Code | None = None
    referenced_series_uid: str = ""
    is_node: bool = False


@dataclass
class ParsedReport:
    path: str
    sop_uid: str
    series_uid: str
    study_uid: str
    patient_id: str
    accession: str
    date: str  # YYYYMMDD or ""
    observers: list[str] = field(default_factory=list)  # raw names: never stored, only labelled
    values: list[RawValue] = field(default_factory=list)
    free_text: int = 0  # free-text content items (left out of the stored copy)
    referenced_studies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


class RefusedError(Exception):
    """The file is not a readable TID 1500 report; the message says why."""


def is_sr(sop_class: str, modality: str) -> bool:
    return modality.strip().upper() == "SR" or sop_class.strip() in SR_CLASSES


def read_report(path: str) -> ParsedReport | Failure:
    """Read one file; never raises for a bad file."""
    try:
        return _parse(path)
    except RefusedError as exc:
        return Failure(path, str(exc))
    except Exception as exc:  # noqa: BLE001 - any damage in a source file is that file's problem
        return Failure(path, f"unreadable measurement report: {exc.__class__.__name__}: {exc}"[:300])


def read_chunk(paths: list[str]) -> list[ParsedReport | Failure]:
    return [read_report(p) for p in paths]


def _parse(path: str) -> ParsedReport:
    import highdicom as hd
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a source file's odd values are not ours to act on
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            raise RefusedError("not a DICOM file (no DICOM header found)") from None
        sop_class = str(ds.get("SOPClassUID", ""))
        if not is_sr(sop_class, str(ds.get("Modality", ""))):
            raise RefusedError(
                f"not a structured report (Modality {ds.get('Modality', '')!s}, SOP class {sop_class})"
            )
        template = _template(ds)
        if template != TID_1500:
            raise RefusedError(
                f"an SR of template {('TID ' + template) if template else 'none'}, not TID 1500 (Measurement "
                "Report); export the measurements as a TID 1500 report (e.g. from 3D Slicer or OHIF)"
            )
        readers: dict[str, Any] = {
            "1.2.840.10008.5.1.4.1.1.88.22": hd.sr.EnhancedSR,
            "1.2.840.10008.5.1.4.1.1.88.33": hd.sr.ComprehensiveSR,
            "1.2.840.10008.5.1.4.1.1.88.34": hd.sr.Comprehensive3DSR,
        }
        if sop_class not in readers:
            raise RefusedError(
                f"an SR of SOP class {sop_class}, which highdicom does not read; Capture reads Enhanced, "
                "Comprehensive and Comprehensive 3D SR"
            )
        try:
            sr = readers[sop_class].from_dataset(ds, copy=False)  # the file is parsed once
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise RefusedError(
                f"an SR of a kind highdicom cannot read ({exc}); Capture reads Enhanced, Comprehensive and "
                "Comprehensive 3D SR"
            ) from None
    return _report(path, ds, sr)


def _template(ds) -> str:
    seq = ds.get("ContentTemplateSequence")
    if not seq:
        return ""
    return str(seq[0].get("TemplateIdentifier", "")).strip()


def _date(ds) -> str:
    for keyword in ("StudyDate", "ContentDate", "SeriesDate"):
        value = str(ds.get(keyword, "") or "").strip()
        if len(value) >= 8:
            return value[:8]
    return ""


def _report(path: str, ds, sr) -> ParsedReport:
    evidence = sr.get_evidence()
    if not evidence:
        raise RefusedError(
            "missing references: the report lists no evidence (CurrentRequestedProcedureEvidenceSequence), "
            "so its measurements cannot be tied to an image series; export it again with its references"
        )
    series_of = {str(sop): str(series) for _study, series, sop, _cls in evidence}
    content = sr.content
    # Each highdicom getter walks and copies the whole tree: ask only those whose template is there.
    templates = _group_templates(ds.ContentSequence)
    getters = {
        "1410": content.get_planar_roi_measurement_groups,
        "1411": content.get_volumetric_roi_measurement_groups,
        "1501": content.get_image_measurement_groups,
    }
    wanted = [t for t in getters if t in templates] if templates <= set(getters) else list(getters)
    groups = [group for t in wanted for group in getters[t]()]
    if not groups:
        raise RefusedError("a TID 1500 report without measurement groups: nothing to read")
    parsed = ParsedReport(
        path=path,
        sop_uid=str(ds.SOPInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        patient_id=str(ds.get("PatientID", "") or "").strip(),
        accession=str(ds.get("AccessionNumber", "") or "").strip(),
        date=_date(ds),
        observers=_observers(ds.ContentSequence),
        free_text=_free_text(ds.ContentSequence),
        referenced_studies=sorted({str(study) for study, *_rest in evidence}),
    )
    for number, group in enumerate(groups, 1):
        parsed.values.extend(_group_values(group, number, series_of, evidence))
    return parsed


def _group_templates(items) -> set[str]:
    """The template ids of the measurement groups (DCM 125007) of the report ("" for a group without one)."""
    found: set[str] = set()
    for item in items or ():
        concept = item.get("ConceptNameCodeSequence")
        if concept and str(concept[0].CodeValue) == "125007":
            seq = item.get("ContentTemplateSequence")
            found.add(str(seq[0].TemplateIdentifier) if seq else "")
        elif str(item.get("ValueType", "")) == "CONTAINER":
            found |= _group_templates(item.get("ContentSequence"))
    return found


def _observers(items) -> list[str]:
    """The report's observers (TID 1002), read from the root's items in one pass."""
    names = []
    for item in items or ():
        code = _concept(item)
        if code == PERSON_OBSERVER_NAME:
            names.append(f"person:{item.get('PersonName', '')}")
        elif code == DEVICE_OBSERVER_UID:
            names.append(f"device:{item.get('UID', '')}")
    return names


def _concept(item) -> str:
    concept = item.get("ConceptNameCodeSequence")
    return str(concept[0].CodeValue) if concept else ""


def _free_text(items) -> int:
    count = 0
    for item in items or ():
        concept = item.get("ConceptNameCodeSequence")
        code = str(concept[0].CodeValue) if concept else ""
        if str(item.get("ValueType", "")) == "TEXT" and code != TRACKING_IDENTIFIER:
            count += 1
        count += _free_text(item.get("ContentSequence"))
    return count


def _code(concept) -> Code | None:
    if concept is None:
        return None
    return Code(str(concept.scheme_designator), str(concept.value), str(concept.meaning))


def is_node(*concepts: Code | None) -> bool:
    for concept in concepts:
        if concept is None:
            continue
        if concept.scheme in ("SCT", "SRT") and concept.code in NODE_CODES:
            return True
        if any(word in concept.meaning.lower() for word in NODE_WORDS):
            return True
    return False


def _referenced_sops(item) -> list[str]:
    """Every ReferencedSOPInstanceUID under a content item (ROI source images, segments)."""
    found = []
    for ref in item.get("ReferencedSOPSequence") or ():
        uid = str(ref.get("ReferencedSOPInstanceUID", "")).strip()
        if uid:
            found.append(uid)
    for child in item.get("ContentSequence") or ():
        found.extend(_referenced_sops(child))
    return found


def _series(group, label: str, series_of: dict[str, str], evidence) -> str:
    sops = _referenced_sops(group[0])
    unknown = [uid for uid in sops if uid not in series_of]
    if unknown:
        raise RefusedError(
            f"missing references: measurement group {label} refers to image {unknown[0]}, which the report's "
            "evidence does not list; export it again with its references"
        )
    if sops:
        return series_of[sops[0]]
    series = {str(s) for _study, s, _sop, _cls in evidence}
    return series.pop() if len(series) == 1 else ""


def _group_context(item) -> dict:
    """A group's tracking identifier and UID, finding and first finding site, in one pass over its
    items: highdicom's properties walk the group once each, which doubled the cost of a read."""
    found: dict = {"tracking_id": "", "tracking_uid": "", "finding": None, "site": None}
    for child in item.get("ContentSequence") or ():
        code = _concept(child)
        if code == TRACKING_IDENTIFIER:
            found["tracking_id"] = str(child.get("TextValue", "")).strip()
        elif code == TRACKING_UID:
            found["tracking_uid"] = str(child.get("UID", "")).strip()
        elif code in (FINDING, FINDING_SITE) and child.get("ConceptCodeSequence"):
            value = child.ConceptCodeSequence[0]
            coded = Code(str(value.CodingSchemeDesignator), str(value.CodeValue), str(value.CodeMeaning))
            key = "finding" if code == FINDING else "site"
            found[key] = found[key] or coded
    return found


def _group_values(group, number: int, series_of: dict[str, str], evidence) -> list[RawValue]:
    context = _group_context(group[0])
    tracking_id, tracking_uid = context["tracking_id"], context["tracking_uid"]
    label = f"{number} ({tracking_id})" if tracking_id else str(number)
    if not tracking_id and not tracking_uid:
        raise RefusedError(f"measurement group {label} has neither a tracking identifier nor a tracking UID")
    finding, site = context["finding"], context["site"]
    series = _series(group, label, series_of, evidence)
    values = []
    for measurement in group.get_measurements():
        unit = measurement.unit
        if str(unit.scheme_designator) != UCUM:
            raise RefusedError(
                f"measurement group {label}: {measurement.name.meaning} has the unit {unit.value!r} of coding "
                f"scheme {unit.scheme_designator}; units must be coded in UCUM (e.g. mm, mm3, g/ml)"
            )
        try:
            value = Decimal(str(measurement.value))
        except InvalidOperation:
            raise RefusedError(
                f"measurement group {label}: {measurement.name.meaning} is not a number"
            ) from None
        derivation = measurement.derivation
        values.append(
            RawValue(
                tracking_id=(tracking_id or tracking_uid)[:64],
                tracking_uid=tracking_uid,
                concept=Code(
                    str(measurement.name.scheme_designator),
                    str(measurement.name.value),
                    str(measurement.name.meaning),
                ),
                value=value,
                unit=str(unit.value),
                derivation=str(derivation.meaning) if derivation is not None else "",
                finding=finding,
                site=site,
                referenced_series_uid=series,
                is_node=is_node(finding, site),
            )
        )
    return values
