"""A file field in a dataset export: its column gives the file's name in an identified export and
"[document]" in a de-identified one (the disclosure policy's rule for file names); the content is
never in an export (read it with the REDCap API's content=file, or download it from the record)."""

from __future__ import annotations

from capture.studies.disclosure import FILE_PRESENT

from .models import StoredFile, file_id


class FileNames:
    """Stored references -> what an export shows, read in one query per batch of values."""

    def __init__(self, identified: bool):
        self.identified = identified
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
        if key not in self.known:
            self.prefetch([value])
        return self.known.get(key, FILE_PRESENT)


def note(identified: bool) -> str:
    """The codebook's note on a file column."""
    if identified:
        return "the uploaded file's name; file contents are not exported"
    return "[document] where a file was uploaded; names and contents are not exported"
