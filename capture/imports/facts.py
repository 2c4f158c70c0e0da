"""What the mapping page shows of an uploaded file, read once and kept with the upload.

The page shows a file's headers, a few sample values per column, its row count and whatever stops
it being read (too many rows, an over-long cell at row 9,000, a repeated header, bad CSV): facts of
the whole file. Reading a 10,000-row × 200-column sheet costs ~400 ms, so the facts are read at
upload (the upload page, `views.index`) and kept in `ImportUpload.facts`; every later view reads them from
there. They depend on the reader options (sheet, header rows, delimiter, encoding) and the import
limits, so other options read the file once more and replace them. An upload made before facts
were kept has none and reads its file on its first view. The dry run and the import read every
row themselves (commit.run_import).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.core.exceptions import ValidationError

from . import readers
from .commit import read
from .forms import SAMPLE_CHARS
from .mapping import Mapping
from .models import ImportUpload
from .report import cell_text
from .structure import numeric_headers
from .uploads import upload_path

VERSION = 1  # raise when the facts kept change shape: older ones are read again
PREVIEW_ROWS = 5  # rows whose cells the page shows as sample values


@dataclass
class FileFacts:
    """The file as the mapping page shows it; `error` set when it cannot be read."""

    key: dict
    error: str = ""
    sheet: str = ""
    sheets: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0  # data rows, blank rows left out
    preview: list[list[str]] = field(default_factory=list)  # the first rows' cells as text, shortened
    numeric: list[str] = field(default_factory=list)  # headers whose first filled cells are numbers

    @classmethod
    def of_table(cls, key: dict, table: readers.Table) -> FileFacts:
        return cls(
            key=key,
            sheet=table.sheet,
            sheets=table.sheets,
            headers=table.headers,
            warnings=table.warnings,
            rows=len(table.rows),
            preview=[[_shortened(cell_text(c)) for c in cells] for _, cells in table.rows[:PREVIEW_ROWS]],
            numeric=sorted(numeric_headers(table)),
        )


def _shortened(text: str) -> str:
    # Cut as the page cuts a sample, so that a sheet of 32,767-character cells is not kept whole.
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def spec_or_default(spec: dict) -> dict:
    """`spec` with a placeholder subject and event, so that a file not mapped yet can be read."""
    base = {"subject_column": "-", "event": "-"}
    return {**base, **{k: v for k, v in spec.items() if v not in ("", None)}} if spec else base


def file_facts(upload: ImportUpload, spec: dict) -> FileFacts:
    """The facts of `upload` read with the reader options of `spec`: the kept ones if they were read
    with the same options and limits, else read from the file now and kept."""
    try:
        mapping = Mapping.from_spec(spec_or_default(spec))
    except ValidationError as exc:
        return FileFacts(key={}, error=" ".join(exc.messages))
    key = {
        **mapping.reader_options(),
        "limits": {name: readers.limit(name) for name in sorted(readers.DEFAULT_LIMITS)},
        "version": VERSION,
    }
    kept = upload.facts or {}
    if kept.get("key") == key:
        return FileFacts(**kept)
    facts, keep = _read(upload, mapping, key)
    if keep:
        upload.facts = asdict(facts)
        ImportUpload.objects.filter(pk=upload.pk).update(facts=upload.facts)
    return facts


def _read(upload: ImportUpload, mapping: Mapping, key: dict) -> tuple[FileFacts, bool]:
    """(the facts, whether to keep them): a file missing from the storage is not a fact of the file."""
    try:
        with upload_path(upload) as path:  # a local copy when the upload is on object storage
            try:
                table = read(path, mapping, upload.original_name)
            except ValidationError as exc:  # the file cannot be read so: a fact of the file
                return FileFacts(key=key, error=" ".join(exc.messages)), True
    except ValidationError as exc:  # no longer stored
        return FileFacts(key=key, error=" ".join(exc.messages)), False
    return FileFacts.of_table(key, table), True
