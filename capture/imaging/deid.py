"""De-identified DICOM copies for sharing, and the check that finds what a copy still carries.

Profile: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile, with the Retain
Longitudinal Temporal Information with Modified Dates option:

- the attribute rules (which attributes, and action D, Z, X, U, Z/D, X/Z, X/D, X/Z/D, X/Z/U*) are
  the standard's Table E.1-1 as shipped by the maintained `dicom-anonymizer` package
  (`dicomfields_2026c`, i.e. the 2026c edition), not a hand-typed list;
- PatientName and PatientID become the subject's study id;
- dates (DA, and the date part of DT) move by the subject's date shift, those of Table E.1-1 and
  every other date of the file, in sequences too; times are kept, except those of action X
  (PatientBirthTime and the like), which are removed; the birth date is emptied;
- UIDs are remapped with `pseudonyms.remap_uid` (HMAC under the study secret), so the same
  source UID gives the same new UID in every file of a subject, and in Capture's index;
- private attributes are removed; a file declaring BurnedInAnnotation YES is refused, and an
  image of a kind that commonly carries burned-in text (`burned_in_risk`) without
  BurnedInAnnotation NO is quarantined (QuarantinedError) until a person has looked at its pixels.
  Capture does not clean pixels.

`findings(ds)` is the checker used by `manage.py check_deid`: any Annex E attribute that still
carries a value the profile would not leave, any private attribute, a missing de-identification
declaration, an image whose pixels may carry burned-in text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c as annex_e
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from capture.studies import pseudonyms

TABLE_EDITION = "2026c"
CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
RULES: dict[int, str] = {}
MASKED_RULES: list[tuple[int, int, int, int, str]] = []  # repeating groups such as overlays (60xx)
for _name, _action in CATEGORIES.items():
    for _entry in getattr(annex_e, _name):
        if len(_entry) == 2:
            RULES[(_entry[0] << 16) | _entry[1]] = _action
        else:
            MASKED_RULES.append((*_entry, _action))

PATIENT_NAME = Tag("PatientName")
PATIENT_ID = Tag("PatientID")
BIRTH_DATE = Tag("PatientBirthDate")
DUMMY = "ANONYMIZED"
UID_ROOT = "2.25."
# DICOM codes (CID 7050) that declare what was done to the file.
METHOD_CODES = [
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
]
STRING_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}


def action_for(tag: BaseTag) -> str | None:
    action = RULES.get(int(tag))
    if action is None:
        for group, element, gmask, emask, masked in MASKED_RULES:
            if (tag.group & gmask) == group and (tag.element & emask) == element:
                return masked
    return action


class RefusedError(Exception):
    """A file that must not be shared as it is; the message says why and what to do."""


@dataclass
class Context:
    study: object
    subject_id: str
    shift_days: int
    uids: dict


def shift_da(value: str, days: int) -> str:
    try:
        date = dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()  # noqa: DTZ007 - a calendar date
    except ValueError:
        return ""
    return (date + dt.timedelta(days=days)).strftime("%Y%m%d")


def shift_dt(value: str, days: int) -> str:
    value = value.strip()
    if len(value) < 8:
        return ""  # a year or year-month only: no day to shift, so nothing is kept
    date = shift_da(value[:8], days)
    return date + value[8:] if date else ""


def _remap(ctx: Context, uid: str) -> str:
    uid = str(uid).strip()
    if uid not in ctx.uids:
        ctx.uids[uid] = pseudonyms.remap_uid(ctx.study, uid)
    return ctx.uids[uid]


def _values(elem) -> list:
    if elem.VM == 0 or elem.value is None:
        return []
    return list(elem.value) if elem.VM > 1 else [elem.value]


def _set(elem, values: list) -> None:
    elem.value = values if len(values) > 1 else (values[0] if values else "")


def _shift(elem, ctx: Context) -> None:
    shift = shift_da if elem.VR == "DA" else shift_dt
    _set(elem, [v for v in (shift(str(v), ctx.shift_days) for v in _values(elem)) if v])


def _clean(ds: Dataset, ctx: Context) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        action = action_for(tag)
        if tag in (PATIENT_NAME, PATIENT_ID):
            elem.value = ctx.subject_id
            continue
        if elem.VR == "SQ":
            if action is None or action in ("U", "X/Z/U*"):
                for item in elem.value:
                    _clean(item, ctx)
            elif action == "Z":
                elem.value = Sequence()
            else:
                del ds[tag]
            continue
        if action is None:
            # Outside Table E.1-1: a date still tells the real calendar, and the copy declares
            # modified dates, so it moves with the others. Times are kept (the option allows it).
            if elem.VR in ("DA", "DT"):
                _shift(elem, ctx)
            continue
        if tag == BIRTH_DATE:
            elem.value = ""
        elif elem.VR == "UI":
            _set(elem, [_remap(ctx, v) for v in _values(elem)])
        elif elem.VR in ("DA", "DT"):
            _shift(elem, ctx)
        elif elem.VR == "TM" and action != "X":
            continue  # the option keeps the times it lists; only the calendar moves
        elif action == "D" and elem.VR in STRING_VRS:
            elem.value = DUMMY
        elif action in ("Z", "Z/D"):
            elem.value = None if elem.VR not in STRING_VRS else ""
        else:
            del ds[tag]


class QuarantinedError(RefusedError):
    """A file whose pixels a person must look at before it is shared (`burned_in_risk`)."""


def deidentify(
    ds: Dataset,
    *,
    study,
    subject_id: str,
    shift_days: int,
    uids: dict | None = None,
    pixels_reviewed: bool = False,
) -> Dataset:
    """De-identify `ds` in place for subject `subject_id` and return it. Raises RefusedError
    (BurnedInAnnotation YES), or QuarantinedError for an image that may carry burned-in text
    unless `pixels_reviewed` (a data manager released it from the quarantine)."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        raise RefusedError(
            "BurnedInAnnotation is YES: the pixels show identifying text. Clean the pixel data (or "
            "leave this file out) before sharing it."
        )
    risk = burned_in_risk(ds)
    if risk and not pixels_reviewed:
        raise QuarantinedError(f"{risk}; quarantined until a data manager has looked at its pixels")
    ctx = Context(
        study=study, subject_id=subject_id, shift_days=shift_days, uids=uids if uids is not None else {}
    )
    ds.remove_private_tags()
    _clean(ds, ctx)
    # Both always name the subject, also when the source left one out: the check expects the pair.
    ds.PatientName = subject_id
    ds.PatientID = subject_id
    if "SOPInstanceUID" in ds and getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = f"PS3.15 Annex E Basic Profile ({TABLE_EDITION}), Modified Dates; Capture"
    if risk:
        # A person looked at the pixels and found no identifying text: the copy says so.
        ds.BurnedInAnnotation = "NO"
        ds.DeidentificationMethod = [ds.DeidentificationMethod, "Pixels reviewed by a person, not cleaned"]
    codes = Sequence()
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    return ds


BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT", "XA", "ES"})
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame classes .7.1 to .7.4
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def burned_in_risk(ds: Dataset) -> str:
    """Why the pixels of `ds` may show identifying text that no header rule removes ("" if
    none): BurnedInAnnotation YES, or an image of a kind that commonly carries burned-in text
    (US, SC, OT, XA, ES, any secondary capture class) that does not declare BurnedInAnnotation NO."""
    declared = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if declared == "NO" or not any(k in ds for k in PIXEL_KEYWORDS):
        return ""
    if declared == "YES":
        return "BurnedInAnnotation is YES: the pixels show identifying text"
    modality = str(ds.get("Modality", "")).strip().upper()
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if modality in BURNED_IN_MODALITIES:
        kind = f"a {modality} image"
    elif sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."):
        kind = "a secondary capture image"
    else:
        return ""
    return f"{kind} commonly carries burned-in text and BurnedInAnnotation is not NO"


# ---------------------------------------------------------------------------- checking


def _has_value(elem) -> bool:
    if elem.VR == "SQ":
        return len(elem.value) > 0
    value = elem.value
    if value is None:
        return False
    if isinstance(value, bytes):
        return bool(value.strip(b"\x00 "))
    if isinstance(value, str):
        return bool(value.strip("\x00 "))
    return elem.VM > 0


def findings(ds: Dataset) -> list[str]:
    """What in `ds` a de-identified copy must not carry, one line each (empty: clean)."""
    found = []
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        found.append("(0012,0062) Patient Identity Removed is not YES")
    modified = str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
    _check(ds, modified, found, path="", study_id=str(ds.get("PatientID", "")))
    risk = burned_in_risk(ds)
    if risk:
        found.append(f"(0028,0301) BurnedInAnnotation: {risk}")
    return found


def _check(ds: Dataset, dates_modified: bool, found: list[str], path: str, study_id: str) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        where = f"{path}{elem.tag} {elem.keyword or 'private'}"
        if tag.is_private:
            found.append(f"{where}: private attribute present")
            continue
        action = action_for(tag)
        if elem.VR == "SQ":
            if action is not None and action not in ("U", "X/Z/U*") and _has_value(elem):
                found.append(f"{where}: Annex E action {action}, sequence still has items")
                continue
            for i, item in enumerate(elem.value):
                _check(item, dates_modified, found, f"{where}[{i}] > ", study_id)
            continue
        if action is None or not _has_value(elem):
            continue
        if tag in (PATIENT_NAME, PATIENT_ID):
            # Both become the study id: a name that differs from the id is a name left behind;
            # in a sequence item, either must hold the file's study id.
            name = str(ds[PATIENT_NAME].value) if PATIENT_NAME in ds else ""
            if (not path and name != str(ds.get("PatientID", ""))) or (path and str(elem.value) != study_id):
                found.append(
                    f"{where}: Annex E action {action}, PatientName and PatientID are not the same study id"
                )
            continue
        if elem.VR == "UI":
            if not all(str(v).startswith(UID_ROOT) for v in _values(elem)):
                found.append(f"{where}: Annex E action {action}, UID not remapped")
            continue
        if elem.VR == "TM" and action == "X":
            found.append(f"{where}: Annex E action X, time kept (only the times the option lists may stay)")
            continue
        if elem.VR in ("DA", "DT", "TM") and tag != BIRTH_DATE:
            if not dates_modified:
                found.append(
                    f"{where}: Annex E action {action}, date/time kept without the Modified Dates option"
                )
            continue
        if action == "D" and str(elem.value) == DUMMY:
            continue
        found.append(f"{where}: Annex E action {action}, still carries a value")
