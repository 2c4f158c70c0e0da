"""Each format of an export is written, and reported, on its own.

One format failing (a limit of the format, a bug in one writer) never loses the others of the
same request: the failing format's files are left out of the zip, the other formats are written,
and the manifest, the audit entry and the job's result say for each format whether it was written
or why not. Only when every format fails does the export fail (`ExportFailedError`). A failure in what
all formats share (reading the records, the selection) is not a format's: it fails the export, and
so does a full disk (every format would fail; the job then says to free space and run it again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from capture.jobs.services import NO_ROOM

from .spec import FORMAT_TITLES
from .writers import Writer, writer_class

log = logging.getLogger(__name__)


class ExportFailedError(Exception):
    """No format of the export could be written; the message says why, per format."""


@dataclass
class Output:
    """One format of an export: its writer, and the error that stopped it (if any)."""

    fmt: str
    writer: Writer | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def title(self) -> str:
        return FORMAT_TITLES[self.fmt]

    def run(self, action: Callable[[Writer], object], where: str = "") -> None:
        """Do `action` with this format's writer unless the format has failed already."""
        if self.error or self.writer is None:
            return
        try:
            action(self.writer)
        except OSError as exc:
            if exc.errno in NO_ROOM:
                raise
            self.fail(f"{type(exc).__name__}: {exc}", where)
        except Exception as exc:  # noqa: BLE001 - a format's failure is reported; the others go on
            self.fail(f"{type(exc).__name__}: {exc}", where)

    def fail(self, message: str, where: str = "") -> None:
        log.exception("Export format %s failed%s", self.fmt, f" ({where})" if where else "")
        self.error = f"{self.title} was not written" + (f" (table {where})" if where else "") + f": {message}"
        if self.writer is not None:
            self.writer.abandon()

    @property
    def files(self) -> list[Path]:
        return list(self.writer.files) if self.ok and self.writer is not None else []

    def report(self) -> dict:
        return {
            "format": self.fmt,
            "written": self.ok,
            "error": self.error,
            "files": [path.name for path in self.files],
        }


def open_outputs(formats: list[str], workdir: Path, builder) -> list[Output]:
    outputs = []
    for fmt in formats:
        out = Output(fmt)
        try:
            out.writer = writer_class(fmt)(workdir, builder)
        except Exception as exc:  # noqa: BLE001 - as in Output.run
            out.fail(f"{type(exc).__name__}: {exc}")
        outputs.append(out)
    return outputs


def check_some_written(outputs: list[Output]) -> None:
    if not any(out.ok for out in outputs):
        raise ExportFailedError("No format could be written. " + " ".join(out.error for out in outputs))


def summary(reports: list[dict]) -> str:
    """One line for the job page: what was written, and what was not and why."""
    written = [FORMAT_TITLES[r["format"]] for r in reports if r["written"]]
    failed = [r["error"] for r in reports if not r["written"]]
    text = f"Written: {', '.join(written)}." if written else "Nothing written."
    return " ".join([text, *failed])
