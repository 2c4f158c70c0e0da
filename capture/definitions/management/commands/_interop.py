"""What the interop commands share: reading files, reporting a conversion's problems."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from capture.definitions.converters import Conversion
from capture.definitions.loader import DefinitionError


def read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}. Fix: give the path of the file.") from None


def report(command, conversion: Conversion) -> None:
    """Print every problem; stop (nothing written) when there are errors."""
    for problem in conversion.problems:
        line = f"{conversion.source}: {problem.severity}: {problem}"
        command.stderr.write(line) if problem.severity == "error" else command.stdout.write(line)
    if conversion.errors:
        raise CommandError(f"{len(conversion.errors)} error(s) in {conversion.source}; nothing was loaded.")


def definition_error(exc: DefinitionError) -> CommandError:
    return CommandError("\n".join(exc.problems) + "\nNothing was loaded.")
