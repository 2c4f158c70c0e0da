"""Reading DICOM headers, fast and without Django: this module runs in worker processes.

Only the attributes Capture indexes are parsed (`specific_tags`), and reading stops before the
pixel data. A file that cannot be read comes back as a `Failure` with a reason a person can act
on; it never stops the run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

# Below this many files, starting worker processes costs more than it saves.
POOL_THRESHOLD = 200
CHUNK = 64

TAGS = [
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "PatientID",
    "AccessionNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "Modality",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "RadiopharmaceuticalInformationSequence",
]


TAG_OF = {keyword: int(Tag(keyword)) for keyword in [*TAGS, "Radiopharmaceutical", "CodeMeaning"]}


@dataclass(frozen=True)
class Header:
    path: str
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str
    accession: str
    study_date: str  # YYYYMMDD or ""
    study_description: str
    series_description: str
    series_number: int | None
    modality: str
    body_part: str
    manufacturer: str
    model_name: str
    radiopharmaceutical: str
    injected_dose_bq: float | None


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


def _text(ds, keyword: str) -> str:
    # The raw bytes, decoded here: pydicom's value conversion costs more than the parse itself,
    # and these attributes are ASCII (UIDs, codes, dates) or short text.
    elem = ds.get_item(TAG_OF[keyword]) if keyword in TAG_OF else None
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        return text.replace("\x00", "").strip()
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _pet(ds) -> tuple[str, float | None]:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return "", None
    item = seq[0]
    name = _text(item, "Radiopharmaceutical")
    if not name:
        codes = item.get("RadionuclideCodeSequence")
        name = _text(codes[0], "CodeMeaning") if codes else ""
    dose = item.get("RadionuclideTotalDose")
    try:
        dose_bq = float(dose) if dose not in (None, "") else None
    except (TypeError, ValueError):
        dose_bq = None
    return name, dose_bq


NOT_DICOM = "not a DICOM file (no DICOM header found)"


def open_dicom(path, **kwargs):
    """A DICOM file; also one without the 128-byte preamble (older writers leave it out).
    pydicom's warnings about odd values in a source file are not ours to act on: silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, **kwargs)
        except InvalidDicomError:
            return pydicom.dcmread(path, force=True, **kwargs)


def _read(path: str):
    # Not `specific_tags`: measured slower than reading every element up to the pixels.
    return open_dicom(path, stop_before_pixels=True)


def _implausible(path: str) -> bool:
    """True for a file no DICOM writer makes: one whose first data element (after the preamble, or
    at the start when there is none) is of group 0000. pydicom, forced, would read a run of zeros as
    millions of empty elements, seconds per megabyte; a zip of such files is a cheap way to stall ingest."""
    with open(path, "rb") as fh:
        head = fh.read(136)
    if len(head) >= 134 and head[128:132] == b"DICM":
        return head[132:134] == b"\x00\x00"
    return head[:2] == b"\x00\x00"


def read_header(path: str) -> Header | Failure:
    try:
        if _implausible(path):
            return Failure(path, NOT_DICOM)
        ds = _read(path)
    except InvalidDicomError:
        return Failure(path, NOT_DICOM)
    except Exception as exc:  # noqa: BLE001 - see below
        # A damaged file makes pydicom raise OSError, EOFError, ValueError, KeyError, TypeError,
        # NotImplementedError (an unknown VR), BytesLengthException (a RuntimeError) and more;
        # whatever it is, it is this file's problem, listed as unreadable, and the run goes on.
        return Failure(path, f"unreadable DICOM header: {exc.__class__.__name__}: {exc}"[:300])
    try:
        study_uid = _text(ds, "StudyInstanceUID")
        series_uid = _text(ds, "SeriesInstanceUID")
        sop_uid = _text(ds, "SOPInstanceUID")
        missing = [
            k for k, v in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid),
                           ("SOPInstanceUID", sop_uid)) if not v
        ]  # fmt: skip
        if len(missing) == 3:
            return Failure(path, NOT_DICOM)
        if missing:
            return Failure(path, f"missing {', '.join(missing)}; a DICOM image file must carry them")
        date = next((d for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
                     if len(d := _text(ds, k)) >= 8), "")  # fmt: skip
        number = _text(ds, "SeriesNumber")
        radiopharmaceutical, dose = _pet(ds)
        return Header(
            path=path,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop_uid,
            patient_id=_text(ds, "PatientID"),
            accession=_text(ds, "AccessionNumber"),
            study_date=date[:8],
            study_description=_text(ds, "StudyDescription"),
            series_description=_text(ds, "SeriesDescription"),
            series_number=int(float(number.split("\\")[0])) if number else None,
            modality=_text(ds, "Modality"),
            body_part=_text(ds, "BodyPartExamined"),
            manufacturer=_text(ds, "Manufacturer"),
            model_name=_text(ds, "ManufacturerModelName"),
            radiopharmaceutical=radiopharmaceutical,
            injected_dose_bq=dose,
        )
    except Exception as exc:  # noqa: BLE001 - values are decoded lazily: the same damage shows up here
        return Failure(path, f"bad value in the header: {exc.__class__.__name__}: {exc}"[:300])


def _read_chunk(paths: list[str]) -> list[Header | Failure]:
    return [read_header(p) for p in paths]


def list_files(root: Path) -> list[Path]:
    """Every regular file under `root` (a file is taken as it is), in a stable order."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found.extend(Path(folder) / name for name in sorted(files))
    return found


def workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def read_headers(
    paths: Iterable[str], *, processes: int | None = None, min_for_pool: int = POOL_THRESHOLD
) -> Iterator[list[Header | Failure]]:
    """Read the headers of `paths`, yielding results chunk by chunk (for progress), using every core."""
    paths = list(paths)
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    processes = processes or workers()
    if processes == 1 or len(paths) < min_for_pool:
        for chunk in chunks:
            yield _read_chunk(chunk)
        return
    # forkserver: workers start from a clean interpreter, not a copy of Django's process and its
    # open database connections. The server imports this module once; workers fork from it.
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        yield from pool.map(_read_chunk, chunks)
