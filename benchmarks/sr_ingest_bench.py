"""Benchmark: measurement report (DICOM SR, TID 1500) ingest end to end against a bare highdicom
read loop of the same files, on the same number of processes.

    .venv/bin/python benchmarks/sr_ingest_bench.py [--files 2000] [--processes N]

Writes N TID 1500 reports (3 lesions each, highdicom over pydicom's CT_small; 50 patients, a report a
week each) to a temporary folder, then times, on the same files:

  bare read   `highdicom.sr.srread` and a walk of every measurement group's measurements, in a pool
              of as many processes as the ingest uses (a plain loop with one), workers forked from
              this process (the cheapest start there is, so the baseline is, if anything, fast);
  ingest      `ingest_folder` (the imaging ingest, which hands SR files to capture/measurements:
              highdicom reads in that many processes, de-identification, subject linkage, a
              de-identified copy in the images storage, one transaction per report) into a fresh
              SQLite database; half the patients are known subjects, half go to the queue.

Prints both rates and ingest / bare read as a throughput percentage (target >= 60 %).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PATIENTS = 50


def make_files(folder: Path, count: int) -> list[Path]:
    """One highdicom report per patient, copied with new UIDs and dates (highdicom's writer is slow
    and is not what is measured)."""
    import pydicom
    from pydicom.uid import generate_uid

    from tests.measurements import srfixtures

    templates = [
        srfixtures.one_report(folder / "templates" / f"{p}.dcm", patient_id=f"BENCH-{p:03d}", date="20250301", seed=f"b{p}")
        for p in range(min(PATIENTS, count))
    ]  # fmt: skip
    paths = []
    for n in range(count):
        patient, week = n % len(templates), n // len(templates)
        ds = pydicom.dcmread(templates[patient])
        date = (dt.date(2025, 3, 1) + dt.timedelta(weeks=week)).strftime("%Y%m%d")
        ds.StudyDate = ds.ContentDate = date
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series{n}"])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"sop{n}"])
        path = folder / f"p{patient:03d}" / f"{n:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path)
        paths.append(path)
    for template in templates:
        template.unlink()
    (folder / "templates").rmdir()
    return paths


def _bare_chunk(paths: list[Path]) -> int:
    import highdicom as hd

    values = 0
    for path in paths:
        report = hd.sr.srread(path)
        for group in report.content.get_planar_roi_measurement_groups():
            values += len(group.get_measurements())
    return values


def bare_read(paths: list[Path], processes: int, chunk: int) -> tuple[float, int]:
    import multiprocessing

    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    started = time.perf_counter()
    if processes == 1:
        values = sum(_bare_chunk(c) for c in chunks)
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            values = sum(pool.imap(_bare_chunk, chunks))
    return len(paths) / (time.perf_counter() - started), values


def setup_study(tmp: Path):
    os.environ["DJANGO_SETTINGS_MODULE"] = "capture.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.MEDIA_ROOT = tmp / "media"  # the images storage follows MEDIA_ROOT
    call_command("migrate", verbosity=0)
    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.imaging import services as imaging
    from capture.studies import services

    load_definitions([ROOT / "fixtures" / "definitions" / "basic"], actor=SYSTEM)
    study = services.create_study(
        actor=SYSTEM, slug="bench", name="Bench", schedule=Schedule.objects.get(name="basic")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="A", name="A")
    for patient in range(PATIENTS // 2):  # half the patients are known subjects, half go to the queue
        subject = services.enroll_subject(
            actor=SYSTEM, study=study, site=site, enrollment_date=dt.date(2025, 3, 1)
        )
        imaging.add_identifier(actor=SYSTEM, subject=subject, kind="patient_id", value=f"BENCH-{patient:03d}")
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="capture-srbench-") as tmp_name:
        tmp = Path(tmp_name)
        study = setup_study(tmp)
        from capture.accounts.system import SYSTEM
        from capture.imaging.dicomread import workers
        from capture.imaging.ingest import ingest_folder
        from capture.measurements.ingest import CHUNK
        from capture.measurements.models import Measurement

        folder = tmp / "sr"
        started = time.perf_counter()
        paths = make_files(folder, args.files)
        print(f"wrote {len(paths)} reports in {time.perf_counter() - started:.1f} s")

        processes = args.processes or workers()
        bare, values = bare_read(paths, processes, CHUNK)
        started = time.perf_counter()
        report = ingest_folder(actor=SYSTEM, study=study, path=folder, processes=processes)
        elapsed = time.perf_counter() - started
        rate = len(paths) / elapsed
        done = report.measurements
        assert done["stored"] == len(paths) and not report.unreadable, report.as_dict()
        stored = Measurement.objects.count()
        print(f"bare highdicom read, {processes} processes:   {bare:8.1f} reports/s ({values} values)")
        print(
            f"ingest end to end, {processes} processes:     {rate:8.1f} reports/s ({elapsed:.1f} s; "
            f"{done['linked']} linked, {done['queued']} queued, {stored} measurements stored)"
        )
        print(f"ingest throughput / bare read throughput = {rate / bare:.0%} (target >= 60 %)")


if __name__ == "__main__":
    main()
