"""De-identified copies of a DICOM tree for an archive (TCIA and the like), and the check of a
tree of copies. Files are written as DST/<subject id>/<study uid>/<series uid>/<sop uid>.dcm:
source file names often carry patient names, so none is kept."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from capture import storage
from capture.audit.services import record_event
from capture.studies import pseudonyms
from capture.studies.models import Study

from . import deid, services
from .dicomread import list_files, open_dicom
from .models import QuarantinedInstance, SourceIdentifier


@dataclass
class CopyReport:
    written: int = 0
    refused: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    # The copies saved to the images storage (name and de-identified UIDs), for publication.
    copies: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "refused": self.refused,
            "quarantined": self.quarantined,
            "subjects": sorted(self.subjects),
        }


STORAGE_DIR = "deid"

# Without these a copy can be neither named nor declared: the file is refused, not guessed at.
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def _subjects_by_hash(study: Study) -> dict:
    return {
        row.source_hash: row.subject
        for row in SourceIdentifier.objects.filter(study=study).select_related("subject")
    }


def pixel_hash(ds) -> str:
    """SHA-256 of the pixel data as stored: what a quarantine decision was made about."""
    digest = hashlib.sha256()
    for keyword in deid.PIXEL_KEYWORDS:
        if keyword in ds:
            digest.update(keyword.encode() + b"\0" + bytes(ds[keyword].value or b""))
    return digest.hexdigest()


def deidentify_tree(
    *, actor, study: Study, src: Path, dst: Path | None = None, to_storage: bool = False
) -> CopyReport:
    """Write de-identified copies of the DICOM files under `src` to the folder `dst` and/or (with
    `to_storage`) to the images storage, where workers on any host find them for publication
    (publish.py). Each file is copied whole or not at all; a file that cannot be copied is refused
    by name and the run goes on; the run always ends with one audit event (with the quarantine
    rows it adds). The actor must hold `export_deidentified` on the study."""
    services.require(actor, study, "export_deidentified")
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist; give a folder (or a file) of DICOM files.")
    if dst is None and not to_storage:
        raise ValueError("Give a folder for the copies, or write them to the images storage.")
    if dst is not None and dst.exists() and dst.resolve() == src.resolve():
        raise ValueError("Write the copies to another folder than the originals.")
    sinks: list = [FolderSink(dst)] if dst is not None else []
    if to_storage:
        sinks.append(StorageSink(study))
    places = ([str(dst)] if dst is not None else []) + (
        [f"storage:{STORAGE_DIR}/{study.slug}"] if to_storage else []
    )
    label = " and ".join(places)
    run = _Run(study=study, sinks=sinks, subjects=_subjects_by_hash(study))
    root = src.resolve()
    try:
        for path in list_files(root):
            name = str(path.relative_to(root)) if path != root else path.name
            try:
                run.copy(path, name)
            except storage.StorageUnavailableError:
                raise  # not the file's fault: the run stops, and runs again once the store is back
            except Exception as exc:  # noqa: BLE001 - any damaged source is refused by name; the run goes on
                run.report.refused.append(
                    {"file": name, "reason": f"not copied: {exc.__class__.__name__}: {exc}"[:300]}
                )
    finally:
        with transaction.atomic():
            for row in run.new_quarantine.values():
                QuarantinedInstance.objects.update_or_create(
                    study=study,
                    sop_uid=row.pop("sop_uid"),
                    defaults=row | {"status": QuarantinedInstance.PENDING},
                )
            report = run.report
            record_event(
                actor=actor,
                study=study,
                action="imaging.deidentify",
                object_type="imaging",
                object_id="copy",
                object_label=label[:255],
                after={
                    "written": report.written,
                    "refused": len(report.refused),
                    "quarantined": len(report.quarantined),
                    "subjects": sorted(report.subjects),
                },
            )
    return run.report


class FolderSink:
    """Copies in a local folder, each written to a hidden name and renamed: whole or absent."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, ds, rel: str) -> None:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        try:
            ds.save_as(partial, enforce_file_format=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


class StorageSink:
    """Copies in the images storage under deid/<study>/ (an object appears whole or not at all);
    the same source gives the same UIDs, so a re-run writes the same names again."""

    def __init__(self, study: Study):
        self.prefix = f"{STORAGE_DIR}/{study.slug}"

    def write(self, ds, rel: str) -> str:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return storage.save(storage.IMAGES, f"{self.prefix}/{rel}", buffer.getvalue())


@dataclass
class _Run:
    study: Study
    sinks: list
    subjects: dict
    report: CopyReport = field(default_factory=CopyReport)
    uids: dict = field(default_factory=dict)
    seen: dict = field(default_factory=dict)  # de-identified SOP uid -> the file that gave it
    new_quarantine: dict = field(default_factory=dict)
    decisions: dict | None = None

    def refuse(self, name: str, reason: str) -> None:
        self.report.refused.append({"file": name, "reason": reason})

    def copy(self, path: Path, name: str) -> None:
        try:
            ds = open_dicom(path)
        except InvalidDicomError:
            return self.refuse(name, "not a DICOM file")
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return self.refuse(name, f"unreadable: {exc.__class__.__name__}: {exc}"[:300])
        if _measurement_report(ds):
            # Annex E deletes an SR's ContentSequence (action D): the copy would be an empty report.
            # capture/measurements/ingest.py keeps a copy cleaned item by item with each report.
            return self.refuse(
                name, "a structured report: its de-identified copy is kept with its measurement report"
            )
        missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "") or "").strip()]
        if missing:
            return self.refuse(
                name,
                f"it has no {', '.join(missing)}: a copy could be neither named nor declared; fix the source",
            )
        patient = str(ds.get("PatientID", "")).strip()
        subject = self.subjects.get(pseudonyms.source_hash(self.study, patient)) if patient else None
        if subject is None:
            return self.refuse(
                name,
                "its PatientID names no subject of the study; ingest it and assign its study in the imaging "
                "queue (or register the PatientID for the subject) first",
            )
        sop_uid = self._remap(str(ds.SOPInstanceUID))
        if sop_uid in self.seen:
            return self.refuse(
                name,
                f"duplicate SOP Instance UID: {self.seen[sop_uid]} has the same one; the first was kept",
            )
        self.seen[sop_uid] = name
        kept = False
        try:
            kept = self._share(ds, name, path, subject, sop_uid)
        finally:
            if not kept:  # neither copied nor held: a later file with this UID is not its duplicate
                del self.seen[sop_uid]
        return None

    def _share(self, ds, name: str, path: Path, subject, sop_uid: str) -> bool:
        """Copy one file whole (or leave nothing); True when it was written or quarantined."""
        reviewed = False
        risk = deid.burned_in_risk(ds)
        if risk and str(ds.get("BurnedInAnnotation", "")).strip().upper() != "YES":
            state = self._review_state(ds, name, path, subject, sop_uid, risk)
            if state != QuarantinedInstance.RELEASED:
                return state == QuarantinedInstance.PENDING
            reviewed = True
        try:
            deid.deidentify(
                ds,
                study=self.study,
                subject_id=subject.subject_id,
                shift_days=subject.date_shift_days,
                uids=self.uids,
                pixels_reviewed=reviewed,
            )
        except deid.RefusedError as exc:
            self.refuse(name, str(exc))
            return False
        _ensure_file_meta(ds)
        rel = f"{subject.subject_id}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{sop_uid}.dcm"
        for sink in self.sinks:
            stored = sink.write(ds, rel)
            if stored is not None:
                self.report.copies.append(
                    {
                        "subject": subject.subject_id,
                        "study_uid": str(ds.StudyInstanceUID),
                        "series_uid": str(ds.SeriesInstanceUID),
                        "sop_uid": sop_uid,
                        "name": stored,
                    }
                )
        self.report.written += 1
        self.report.subjects.add(subject.subject_id)
        return True

    def _remap(self, uid: str) -> str:
        uid = uid.strip()
        if uid not in self.uids:
            self.uids[uid] = pseudonyms.remap_uid(self.study, uid)
        return self.uids[uid]

    def _review_state(self, ds, name: str, path: Path, subject, sop_uid: str, risk: str) -> str:
        """RELEASED when a person released these very pixels; REJECTED (refused) or PENDING
        (quarantined, now or again) when the file is not copied."""
        if self.decisions is None:
            self.decisions = {q.sop_uid: q for q in QuarantinedInstance.objects.filter(study=self.study)}
        digest = pixel_hash(ds)
        decided = self.decisions.get(sop_uid)
        if decided is not None and decided.pixel_hash == digest:
            if decided.status == QuarantinedInstance.RELEASED:
                return QuarantinedInstance.RELEASED
            if decided.status == QuarantinedInstance.REJECTED:
                self.refuse(name, f"rejected in the imaging quarantine: {decided.decision_reason}")
                return QuarantinedInstance.REJECTED
        else:
            self.new_quarantine[sop_uid] = {
                "sop_uid": sop_uid,
                "subject": subject,
                "pixel_hash": digest,
                "modality": str(ds.get("Modality", ""))[:16],
                "sop_class": str(ds.get("SOPClassUID", ""))[:64],
                "why": risk[:255],
                "source_file": str(path)[:1000],
                "decided_at": None,
                "decided_by": None,
                "decision_reason": "",
            }
        self.report.quarantined.append(
            {"file": name, "reason": f"{risk}; quarantined until a data manager reviews its pixels"}
        )
        return QuarantinedInstance.PENDING


def _measurement_report(ds) -> bool:
    """A TID 1500 Measurement Report (other SRs are copied by the Annex E rules, content removed)."""
    templates = ds.get("ContentTemplateSequence") or []
    return str(ds.get("Modality", "")).strip().upper() == "SR" and any(
        str(t.get("TemplateIdentifier", "")).strip() == "1500" for t in templates
    )


def _ensure_file_meta(ds) -> None:
    """Copies are written as conformant DICOM files (preamble and meta), whatever the source was."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta


def check_tree(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """(files checked, [(file, finding)]) for every DICOM file under `path`."""
    root = path.resolve()
    problems: list[tuple[str, str]] = []
    checked = 0
    for file in list_files(root):
        name = str(file.relative_to(root)) if file != root else file.name
        try:
            ds = open_dicom(file, defer_size="4 KB")  # every tag, even after the pixels
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append((name, f"not checked, unreadable: {exc.__class__.__name__}"))
            continue
        checked += 1
        problems.extend((name, finding) for finding in deid.findings(ds))
    return checked, problems
