"""De-identified copies of a DICOM tree for an archive (TCIA and the like), and the check of a
tree of copies. Files are written as DST/<subject id>/<study uid>/<series uid>/<sop uid>.dcm:
source file names often carry patient names, so none is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from capture.audit.services import record_event
from capture.studies import pseudonyms
from capture.studies.models import Study

from . import deid
from .dicomread import list_files, open_dicom
from .models import SourceIdentifier


@dataclass
class CopyReport:
    written: int = 0
    refused: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "refused": self.refused,
            "warnings": self.warnings,
            "subjects": sorted(self.subjects),
        }


def _subjects_by_hash(study: Study) -> dict:
    return {
        row.source_hash: row.subject
        for row in SourceIdentifier.objects.filter(study=study).select_related("subject")
    }


def deidentify_tree(*, actor, study: Study, src: Path, dst: Path) -> CopyReport:
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist; give a folder (or a file) of DICOM files.")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError("Write the copies to another folder than the originals.")
    subjects = _subjects_by_hash(study)
    report = CopyReport()
    uids: dict[str, str] = {}
    root = src.resolve()
    for path in list_files(root):
        name = str(path.relative_to(root)) if path != root else path.name
        try:
            ds = open_dicom(path)
        except InvalidDicomError:
            report.refused.append({"file": name, "reason": "not a DICOM file"})
            continue
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            report.refused.append(
                {"file": name, "reason": f"unreadable: {exc.__class__.__name__}: {exc}"[:300]}
            )
            continue
        patient = str(ds.get("PatientID", "")).strip()
        subject = subjects.get(pseudonyms.source_hash(study, patient)) if patient else None
        if subject is None:
            report.refused.append(
                {
                    "file": name,
                    "reason": "its PatientID names no subject of the study; ingest it and assign its study "
                    "in the imaging queue (or register the PatientID for the subject) first",
                }
            )
            continue
        warning = deid.burned_in_warning(ds)
        try:
            deid.deidentify(
                ds, study=study, subject_id=subject.subject_id, shift_days=subject.date_shift_days, uids=uids
            )
        except deid.RefusedError as exc:
            report.refused.append({"file": name, "reason": str(exc)})
            continue
        target = (
            dst / subject.subject_id / str(ds.get("StudyInstanceUID", "study"))
            / str(ds.get("SeriesInstanceUID", "series")) / f"{ds.get('SOPInstanceUID', f'file{report.written}')}.dcm"
        )  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        _ensure_file_meta(ds)
        ds.save_as(target, enforce_file_format=True)
        report.written += 1
        report.subjects.add(subject.subject_id)
        if warning:
            report.warnings.append({"file": name, "reason": warning})
    with transaction.atomic():
        record_event(
            actor=actor,
            study=study,
            action="imaging.deidentify",
            object_type="imaging",
            object_id="copy",
            object_label=str(dst)[:255],
            after={
                "written": report.written,
                "refused": len(report.refused),
                "subjects": sorted(report.subjects),
            },
        )
    return report


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
