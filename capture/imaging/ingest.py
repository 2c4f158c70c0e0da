"""Where DICOM files come from: a folder on the server, or an uploaded zip (unpacked to a
temporary folder, checked against a size limit first so a zip bomb cannot fill the disk)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.core.exceptions import ValidationError

from . import services
from .dicomread import list_files
from .models import ImagingStudy

# An upload may unpack to at most this many bytes (headers are read, but the files land on disk).
MAX_UNPACKED_BYTES = 4 * 1024**3


def ingest_folder(*, actor, study, path: Path, progress=None, processes=None) -> services.IngestReport:
    if not path.exists():
        raise ValidationError(f"{path} does not exist; give a folder (or a file) of DICOM files.")
    root = str(path.resolve())
    files = [str(p) for p in list_files(path.resolve())]
    return services.ingest_files(
        actor=actor,
        study=study,
        paths=files,
        source_kind=ImagingStudy.FOLDER,
        source=root,
        display_root=root,
        progress=progress,
        processes=processes,
    )


def ingest_zip(*, actor, study, zip_path: Path, name: str, progress=None) -> services.IngestReport:
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationError(
            f"{name} is not a readable zip file ({exc}); zip the DICOM folder again."
        ) from None
    with archive, tempfile.TemporaryDirectory(prefix="capture-dicom-") as tmp:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValidationError(
                f"{name} unpacks to more than {MAX_UNPACKED_BYTES // 1024**3} GB; split it into smaller zips, "
                "or ask an administrator to run `manage.py ingest_dicom` on the folder."
            )
        # ZipFile.extract drops absolute paths and '..', so nothing lands outside tmp.
        archive.extractall(tmp, members)
        root = str(Path(tmp).resolve())
        files = [str(p) for p in list_files(Path(root)) if not Path(p).name.startswith("._")]
        return services.ingest_files(
            actor=actor,
            study=study,
            paths=files,
            source_kind=ImagingStudy.UPLOAD,
            source=name,
            display_root=root,
            progress=progress,
        )
