"""Where DICOM files come from: a folder on the server, or an uploaded zip (unpacked to a
temporary folder, checked against a size limit first so a zip bomb cannot fill the disk)."""

from __future__ import annotations

import re
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

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


def ingest_zip(*, actor, study, zip_path: Path, name: str, progress=None, then=None) -> services.IngestReport:
    """Index the DICOM files of an uploaded zip; `then(folder)`, if given, runs on the unpacked
    files before they are removed (the ingest job de-identifies them for the research archive)."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValidationError(
            f"{name} is not a readable zip file ({exc}); zip the DICOM folder again."
        ) from None
    with archive, tempfile.TemporaryDirectory(prefix="capture-dicom-") as tmp:
        members = [m for m in archive.infolist() if not m.is_dir()]
        unsafe = [m.filename for m in members if not _safe_member(m.filename)]
        if unsafe:
            # ZipFile.extract would strip the '..' and land the file inside tmp, but a zip made this
            # way was not made by zipping a folder: refuse it rather than guess what it meant.
            raise ValidationError(
                f"{name} holds entries that point outside the zip's own folder ({', '.join(unsafe[:5])}); "
                "zip the DICOM folder itself (its entries must be relative paths without '..')."
            )
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValidationError(
                f"{name} unpacks to more than {MAX_UNPACKED_BYTES // 1024**3} GB; split it into smaller zips, "
                "or ask an administrator to run `manage.py ingest_dicom` on the folder."
            )
        _extract(archive, members, Path(tmp), name)
        root = str(Path(tmp).resolve())
        files = [str(p) for p in list_files(Path(root)) if not Path(p).name.startswith("._")]
        report = services.ingest_files(
            actor=actor,
            study=study,
            paths=files,
            source_kind=ImagingStudy.UPLOAD,
            source=name,
            display_root=root,
            progress=progress,
        )
        if then is not None:
            then(Path(root))
        return report


def _safe_member(filename: str) -> bool:
    path = PurePosixPath(filename.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not re.match(r"^[A-Za-z]:", filename)


def _extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], target: Path, name: str) -> None:
    """Unpack `members`, never past the sizes their headers declare (a header that lies is caught
    by the CRC check); a damaged, encrypted or oddly compressed member refuses the whole zip."""
    for member in members:
        try:
            archive.extract(member, target)
        except RuntimeError as exc:  # zipfile's "File ... is encrypted, password required"
            raise ValidationError(
                f"{name}: {member.filename} is password-protected ({exc}); zip the folder without a password."
            ) from None
        except NotImplementedError as exc:
            raise ValidationError(
                f"{name}: {member.filename} uses a compression Capture cannot unpack ({exc}); "
                "zip the folder again with standard (deflate) compression."
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise ValidationError(
                f"{name}: {member.filename} is damaged ({exc}); zip the DICOM folder again and re-upload it."
            ) from None
