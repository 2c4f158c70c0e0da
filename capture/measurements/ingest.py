"""Measurement reports (DICOM SR, TID 1500) in: the imaging ingest hands its SR files here.

There is one ingest path. `capture.imaging.services.ingest_files` (behind `manage.py ingest_dicom`,
the zip upload job and DICOMweb) reads every file's header; the files that are structured reports
come here instead of into the image index. Each report is:

1. read with highdicom in worker processes (sr.py), refused whole with a reason when malformed;
2. de-identified as images are: UIDs remapped (`pseudonyms.remap_uid`), PatientID and accession
   kept only as keyed hashes, observers stored as a reader label (a keyed hash of the name, never
   the name), free-text content items left out of the stored copy (counted in the result);
3. linked to its subject by the PatientID / accession hash, or through the imaging study it was read
   on when that study is already linked; unmatched reports wait in the measurement queue;
4. stored through store.py (one transaction per file, with its audit event) with a de-identified
   copy of the SR in the images storage (`storage_name`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import pydicom
from django.db import transaction
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from capture import storage
from capture.imaging import deid
from capture.imaging import services as imaging
from capture.imaging.dicomread import workers
from capture.imaging.models import ImagingStudy
from capture.studies import pseudonyms
from capture.studies.models import Study, Subject

from . import compute, sr
from .models import MeasurementReport
from .store import Coded, IncomingReport, MeasuredValue, store_report

POOL_THRESHOLD = 32  # a highdicom read costs ~10 ms: worker processes pay off sooner than for headers
CHUNK = 16
STORAGE_DIR = "deid"  # as capture/imaging/sharing.py: deid/<study>/<subject>/<study>/<series>/<sop>.dcm
PENDING_DIR = "deid-pending"  # queued reports: deid-pending/<study>/<sop>.dcm, dates not yet shifted
CLEAN_CONTENT = ("113104", "Clean Structured Content Option")


@dataclass
class ReportsResult:
    files: int = 0
    stored: int = 0
    linked: int = 0
    queued: int = 0
    already: int = 0
    free_text_dropped: int = 0
    refused: list[dict] = field(default_factory=list)
    subjects: set[int] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "stored": self.stored,
            "linked": self.linked,
            "queued": self.queued,
            "already": self.already,
            "free_text_dropped": self.free_text_dropped,
            "refused": len(self.refused),
        }


def read_reports(
    paths: list[str], processes: int | None = None
) -> Iterator[list[sr.ParsedReport | sr.Failure]]:
    """Parse `paths` with highdicom, chunk by chunk, on every core (as dicomread.read_headers)."""
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    processes = processes or workers()
    if processes == 1 or len(paths) < POOL_THRESHOLD:
        for chunk in chunks:
            yield sr.read_chunk(chunk)
        return
    context = get_context("forkserver")  # workers start clean, without Django's connections
    context.set_forkserver_preload([sr.__name__])
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        yield from pool.map(sr.read_chunk, chunks)


class _Keys:
    """The study's keyed hashes and UID remapping, memoised for one run."""

    def __init__(self, study: Study):
        self.study = study
        self.uid = imaging._uid_mapper(study)
        self.hash = imaging._hash_mapper(study)
        self.linkage: dict[tuple, tuple[Subject | None, ImagingStudy | None]] = {}

    def observer(self, names: list[str]) -> str:
        """A reader label, the same for the same observer in every report of the study, never the name."""
        people = [n for n in names if n.startswith("person:") and n != "person:"]
        if people:
            return f"Reader {pseudonyms.source_hash(self.study, 'observer:' + people[0])[:6]}"
        return "Device" if names else ""


def ingest_reports(
    *,
    actor,
    study: Study,
    paths: list[str],
    source_kind: str,
    source: str,
    display_root: str = "",
    progress=None,
    processes: int | None = None,
) -> ReportsResult:
    """Store the TID 1500 reports among `paths`; each file whole or not at all, with a reason."""
    imaging.require(actor, study)
    result = ReportsResult(files=len(paths))
    keys = _Keys(study)
    done = 0
    # Stored as they are read (the workers read ahead), in the order given: oldest first, as the
    # callers sort them, because a lesion is new when first seen after the subject's first
    # timepoint (store.py), so a baseline must be stored before its follow-ups.
    for chunk in read_reports(paths, processes):
        _store_chunk(actor, study, chunk, keys, source_kind, source, display_root, result)
        done += len(chunk)
        if progress:  # after the chunk's commit, so the job page sees it
            progress(done, len(paths), f"Read and stored {done} of {len(paths)} measurement reports")
    recompute(list(Subject.objects.filter(pk__in=result.subjects)))
    return result


def _store_chunk(actor, study, chunk, keys, source_kind, source, display_root, result: ReportsResult) -> None:
    """One commit per chunk (on SQLite a commit costs more than a report's rows), each report in a
    savepoint of its own: a refused report leaves nothing, and the others of the chunk stay."""
    saved: list[str] = []
    try:
        with transaction.atomic():
            for parsed in chunk:
                try:
                    if isinstance(parsed, sr.Failure):
                        raise sr.RefusedError(parsed.reason)
                    saved.append(_store_one(actor, study, parsed, keys, source_kind, source, result))
                except storage.StorageUnavailableError:
                    raise  # not the file's fault: the run stops, to be run again
                except Exception as exc:  # noqa: BLE001 - a refusal of one file (store.py's checks) ends that file only
                    messages = getattr(exc, "messages", None) or [str(exc)]
                    reason = f"measurement report refused: {' '.join(messages)}"[:400]
                    result.refused.append({"file": _display(parsed.path, display_root), "reason": reason})
    except BaseException:
        for name in filter(None, saved):  # the chunk's rows are gone: so are its copies (best effort)
            with contextlib.suppress(Exception):
                storage.delete(storage.IMAGES, name)
        raise


def _display(path: str, root: str) -> str:
    return path[len(root) :].lstrip("/") if root and path.startswith(root) else path


def _linkage(
    study: Study, parsed: sr.ParsedReport, keys: _Keys
) -> tuple[Subject | None, ImagingStudy | None]:
    """The subject by PatientID / accession hash, else through a linked imaging study it was read on."""
    hashes = (keys.hash(parsed.patient_id), keys.hash(parsed.accession))
    uids = [keys.uid(u) for u in dict.fromkeys([parsed.study_uid, *parsed.referenced_studies])]
    known = keys.linkage.get((hashes, tuple(uids)))  # a run adds no link: a patient's answer holds
    if known is not None:
        return known
    subject = imaging.subject_for_hashes(study, *hashes)
    found = list(ImagingStudy.objects.filter(study=study, study_uid__in=uids).select_related("subject"))
    linked = [s for s in found if s.subject_id and (subject is None or s.subject_id == subject.pk)]
    imaging_study = next(iter(linked or found), None)
    if subject is None and linked:
        subject = linked[0].subject
    keys.linkage[(hashes, tuple(uids))] = (subject, imaging_study)
    return subject, imaging_study


def incoming_report(parsed: sr.ParsedReport, keys: _Keys) -> IncomingReport:
    def coded(code: sr.Code | None) -> Coded | None:
        return Coded(code.scheme, code.code, code.meaning) if code else None

    values = [
        MeasuredValue(
            tracking_id=v.tracking_id,
            tracking_uid=keys.uid(v.tracking_uid) if v.tracking_uid else "",
            concept=Coded(v.concept.scheme, v.concept.code, v.concept.meaning),
            value=v.value,
            unit=v.unit,
            finding=coded(v.finding),
            site=coded(v.site),
            derivation=v.derivation[:64],
            referenced_series_uid=keys.uid(v.referenced_series_uid) if v.referenced_series_uid else "",
            is_node=v.is_node,
        )
        for v in parsed.values
    ]
    return IncomingReport(
        sop_uid=keys.uid(parsed.sop_uid),
        date=imaging.parse_da(parsed.date),
        values=values,
        series_uid=keys.uid(parsed.series_uid),
        study_uid=keys.uid(parsed.study_uid),
        patient_hash=keys.hash(parsed.patient_id),
        observer=keys.observer(parsed.observers),
    )


def _store_one(actor, study, parsed, keys, source_kind, source, result: ReportsResult) -> str:
    """Store one report and its copy; returns the copy's name ("" when it was already stored)."""
    incoming = incoming_report(parsed, keys)
    if MeasurementReport.objects.filter(study=study, sop_uid=incoming.sop_uid).exists():
        result.already += 1  # ingest is idempotent: the same file adds nothing
        return ""
    subject, imaging_study = _linkage(study, parsed, keys)
    ds = deidentified_copy(parsed.path, study, subject, keys, incoming.observer)
    name = copy_name(study, subject, ds)
    with transaction.atomic():
        store_report(
            actor=actor,
            study=study,
            subject=subject,
            incoming=incoming,
            source_kind=MeasurementReport.SR,
            source=f"{source_kind}: {source}",
            imaging_study=imaging_study,
            storage_name=name,
        )
        stored = _save(ds, name)
        if stored != name:  # the storage renamed it (a name already taken): keep what it says
            MeasurementReport.objects.filter(study=study, sop_uid=incoming.sop_uid).update(
                storage_name=stored
            )
    result.stored += 1
    result.free_text_dropped += parsed.free_text
    if subject is not None:
        result.linked += 1
        result.subjects.add(subject.pk)
    else:
        result.queued += 1
    return stored


# ------------------------------------------------------------------- the de-identified copy


def deidentified_copy(path: str, study: Study, subject: Subject | None, keys: _Keys, label: str) -> Dataset:
    """The SR de-identified by the images' policy (deid.py). PS3.15 Annex E removes the whole
    ContentSequence (action D); an SR's content is its measurements, so it is cleaned item by item
    instead (the Clean Structured Content option): UIDs remapped, dates shifted, person names
    replaced by the reader label, free-text items left out (tracking identifiers kept)."""
    ds = pydicom.dcmread(path)
    content = ds.ContentSequence
    del ds.ContentSequence
    shift = subject.date_shift_days if subject else 0  # a queued copy is shifted when it is assigned
    deid.deidentify(
        ds, study=study, subject_id=subject.subject_id if subject else "PENDING", shift_days=shift, uids={}
    )
    ds.ContentSequence = _clean_content(content, keys, shift, label)
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_CONTENT[0], "DCM", CLEAN_CONTENT[1]
    ds.DeidentificationMethodCodeSequence.append(item)
    return ds


def _clean_content(items, keys: _Keys, shift: int, label: str) -> Sequence:
    kept = Sequence()
    for item in items:
        concept = item.get("ConceptNameCodeSequence")
        code = str(concept[0].CodeValue) if concept else ""
        kind = str(item.get("ValueType", ""))
        if kind == "TEXT" and code != sr.TRACKING_IDENTIFIER:
            continue  # free text may name anyone: left out
        if kind == "PNAME":
            item.PersonName = label or "Reader"
        if kind == "UIDREF" and "UID" in item:
            item.UID = keys.uid(str(item.UID))
        for ref in item.get("ReferencedSOPSequence") or ():
            ref.ReferencedSOPInstanceUID = keys.uid(str(ref.ReferencedSOPInstanceUID))
        for keyword in ("Date", "DateTime", "ObservationDateTime"):
            if keyword in item:
                _shift_element(item[keyword], shift)
        if "ContentSequence" in item:
            item.ContentSequence = _clean_content(item.ContentSequence, keys, shift, label)
        kept.append(item)
    return kept


def _shift_element(elem, days: int) -> None:
    shift = deid.shift_da if elem.VR == "DA" else deid.shift_dt
    if elem.value:
        elem.value = shift(str(elem.value), days)


def shift_all(ds: Dataset, days: int) -> None:
    """Move every date of `ds` (sequences too) by `days`: a queued copy joins its subject's calendar."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                shift_all(item, days)
        elif elem.VR in ("DA", "DT") and elem.value and elem.VM == 1:
            _shift_element(elem, days)


def copy_name(study: Study, subject: Subject | None, ds: Dataset) -> str:
    if subject is None:
        return f"{PENDING_DIR}/{study.slug}/{ds.SOPInstanceUID}.dcm"
    return (
        f"{STORAGE_DIR}/{study.slug}/{subject.subject_id}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/"
        f"{ds.SOPInstanceUID}.dcm"
    )


def _save(ds: Dataset, name: str) -> str:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return storage.save(storage.IMAGES, name, buffer.getvalue())


def finish_pending_copy(report: MeasurementReport, subject: Subject) -> None:
    """At assignment: the queued copy gets the subject's id and date shift, under the subject's folder."""
    if not report.storage_name or not storage.exists(storage.IMAGES, report.storage_name):
        return
    with storage.local_copy(storage.IMAGES, report.storage_name) as path:
        ds = pydicom.dcmread(path)
    shift_all(ds, subject.date_shift_days)
    ds.PatientID = ds.PatientName = subject.subject_id
    name = _save(ds, copy_name(report.study, subject, ds))
    old = report.storage_name
    MeasurementReport.objects.filter(pk=report.pk).update(storage_name=name)
    report.storage_name = name
    transaction.on_commit(lambda: storage.delete(storage.IMAGES, old))


def recompute(subjects) -> None:
    """Responses follow the measurements: recomputed for every subject a run touched."""
    for subject in subjects:
        compute.recompute_subject(subject)
