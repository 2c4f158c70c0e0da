"""Benchmarks that seed a database in one process and measure in a fresh one (so the measured
process starts cold and its peak RSS is its own): the shared runner."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable


def django_setup(db: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "capture.settings.test")
    os.environ["DATABASE_URL"] = db
    import django

    django.setup()


def _child(script: str, cwd: str, *args: str) -> dict:
    done = subprocess.run(  # noqa: S603 - the benchmark's own script, with arguments built here
        [sys.executable, script, *args], capture_output=True, text=True, check=False, cwd=cwd
    )
    if done.returncode:
        raise SystemExit(done.stderr or done.stdout)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    *,
    doc: str,
    script: str,
    cwd: str,
    prefix: str,
    seed: Callable[[str, int], dict],
    measure: Callable[[str], dict],
) -> tuple[argparse.Namespace, dict, dict] | None:
    """Parse --subjects; in a phase child, run that phase and print its JSON (returns None);
    otherwise run the seed then the measure child on a temporary SQLite database and return
    (arguments, what seed returned, what measure returned)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=50, help="subjects (issue: 10000)")
    parser.add_argument("--phase", choices=["seed", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = seed(args.db, args.subjects) if args.phase == "seed" else measure(args.db)
        print(json.dumps(result))
        return None
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        db = f"sqlite:///{work}/bench.sqlite3"
        made = _child(script, cwd, "--phase", "seed", "--db", db, "--subjects", str(args.subjects))
        got = _child(script, cwd, "--phase", "measure", "--db", db)
    return args, made, got
