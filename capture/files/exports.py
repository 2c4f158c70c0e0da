"""A file field in a dataset export: its column gives the file's name in an identified export and
"[document]" in a de-identified one (the disclosure policy's rule for file names). The content is
in the export only when asked (`ExportSpec.include_files`, identified exports by a role that may
download files): `FileContents` then names each file's place in the zip,
files/<subject>/<event>/<form>/<instance>/<field>/<name>, the column shows that path, and the
contents are streamed into the zip through the storage API."""

from __future__ import annotations

import hashlib
import zipfile

from capture.studies.disclosure import FILE_PRESENT

from .models import StoredFile, file_id
from .services import open_content

BLOCK = 1 << 20  # bytes read from the storage at a time


class FileNames:
    """Stored references -> what an export shows, read in one query per batch of values; with
    `paths` (file id -> path in the zip) a file whose content is exported shows its path."""

    def __init__(self, identified: bool, paths: dict | None = None):
        self.identified = identified
        self.paths = paths if paths is not None else {}
        self.known: dict = {}

    def prefetch(self, values) -> None:
        if not self.identified:
            return
        wanted = {key for key in map(file_id, values) if key is not None and key not in self.known}
        if wanted:
            self.known.update(StoredFile.objects.filter(pk__in=wanted).values_list("pk", "name"))

    def shown(self, value) -> str:
        key = file_id(value)
        if key is None:
            return str(value)
        if not self.identified:
            return FILE_PRESENT
        if key in self.paths:
            return self.paths[key]
        if key not in self.known:
            self.prefetch([value])
        return self.known.get(key, FILE_PRESENT)


def note(identified: bool, contents: bool = False) -> str:
    """The codebook's note on a file column."""
    if identified and contents:
        return "the path in this zip of the uploaded file (files/...)"
    if identified:
        return "the uploaded file's name; file contents are not exported"
    return "[document] where a file was uploaded; names and contents are not exported"


def _segment(text) -> str:
    """One path segment of the zip: no separators, no dot-only names."""
    cleaned = str(text).replace("/", "_").replace("\\", "_").strip()
    return "_" if cleaned.strip(".") == "" else cleaned


class FileContents:
    """The file contents of one export: planned from the exported records (filling `paths`, which
    the file columns read), then written into the zip one file at a time."""

    def __init__(self, builder, paths: dict):
        self.builder = builder
        self.paths = paths
        self.files: dict = {}  # file id -> StoredFile

    def plan(self) -> None:
        """Find every file the exported records hold (in the selected events, forms and items)."""
        sel = self.builder.selection
        file_items = {
            form: [(item.name, item.group) for item in items if item.element.datatype == "file"]
            for form, items in sel.forms.items()
        }
        event_names = {event.pk: event.name for event in sel.events}
        found: dict = {}
        for chunk, records in self.builder.record_chunks():
            for subject in chunk:
                shown_id = self.builder.deid.subject_key(subject.subject_id)
                for (event_id, form, instance), (_status, data) in records.get(subject.pk, {}).items():
                    if event_id not in event_names or not file_items.get(form):
                        continue
                    where = [shown_id, event_names[event_id], form, instance]
                    for field, key in _references(data, file_items[form]):
                        found[key] = [*where, field]
        stored = StoredFile.objects.filter(pk__in=list(found), study=self.builder.study)
        for row in stored:
            self.files[row.pk] = row
            self.paths[row.pk] = "/".join(["files", *map(_segment, [*found[row.pk], row.name])])

    def write(self, bundle: zipfile.ZipFile) -> list[dict]:
        """Stream each file into `bundle`; the manifest's entries (name, bytes, sha256)."""
        entries = []
        for key, stored in sorted(self.files.items(), key=lambda pair: self.paths[pair[0]]):
            name, digest, size = self.paths[key], hashlib.sha256(), 0
            with open_content(stored) as source, bundle.open(name, "w", force_zip64=True) as target:
                while block := source.read(BLOCK):
                    digest.update(block)
                    target.write(block)
                    size += len(block)
            entries.append({"name": name, "bytes": size, "sha256": digest.hexdigest()})
        return entries


def _references(data: dict, items: list[tuple[str, str]]):
    """(field as the path names it, file id) for the file items of one record's data; an item of a
    repeating group is named <item>-<row>."""
    for name, group in items:
        if not group:
            key = file_id(data.get(name))
            if key is not None:
                yield name, key
            continue
        for row, values in enumerate(data.get(group) or [], start=1):
            key = file_id(values.get(name)) if isinstance(values, dict) else None
            if key is not None:
                yield f"{name}-{row}", key
