"""What management commands share about the paths they are given: an input that is not there or an
output folder that cannot be made is a CommandError naming the path and the fix, never a traceback.
Commands call these first, before any work (`tests/badinput/test_command_paths.py` runs every
command with such paths: a new command with a file argument belongs in its table)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError


def input_file(path: Path | None, what: str = "file") -> Path | None:
    """`path` when it is a readable file (None passes through, for optional arguments)."""
    if path is None:
        return None
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CommandError(f"{path} {problem}. Fix: give the path of the {what}.")
    return path


def output_folder(path: Path) -> Path:
    """`path`, made if missing (with its parents)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"Cannot make the output folder {path}: {exc.strerror}. Fix: give a folder you may write to."
        ) from None
    return path


def write_output(path: Path, data: bytes | str) -> None:
    """Write `data` to `path`, making its folder first."""
    output_folder(path.parent)
    try:
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise CommandError(
            f"Cannot write {path}: {exc.strerror}. Fix: give a path you may write to."
        ) from None
