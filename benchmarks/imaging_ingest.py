"""Benchmark: DICOM ingest end to end against bare pydicom header reads, same files, same processes.

    .venv/bin/python benchmarks/imaging_ingest.py [--files 5000] [--processes N]

Writes N copies of pydicom's CT_small.dcm with distinct UIDs (50 patients, one study of two series
each) to a temporary folder, then times, on the same files:

  bare pool   `dcmread(stop_before_pixels=True)` in a multiprocessing pool of as many processes as the
              ingest uses (--processes, or every core), in chunks of the ingest's size, each worker
              handing back the files' SOP Instance UIDs; the pool's start is timed, as the ingest's
              is. Workers fork from this process (pydicom already imported): the cheapest start there
              is, so the baseline is, if anything, fast. With one process it is a plain loop, as the
              ingest is.
  bare loop   the same reads in this one process (for reference: what one core does)
  ingest      `ingest_folder` (header reads in that many processes, grouping, hashing, database
              writes in one transaction) into a fresh SQLite database, then again (adds nothing).

Target: ingest >= 70 % of the bare pool's rate.
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


def make_files(folder: Path, count: int) -> list[Path]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    patients = 50
    paths = []
    for n in range(count):
        patient, series = n % patients, (n // patients) % 2
        ds = template.copy()
        ds.PatientID = f"BENCH-{patient:03d}"
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study{patient}"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series{patient}.{series}"])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"sop{n}"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate = "20250310"
        path = folder / f"p{patient:03d}" / f"{n:05d}.dcm"
        path.parent.mkdir(exist_ok=True)
        ds.save_as(path)
        paths.append(path)
    return paths


def _bare_chunk(paths: list[Path]) -> list[str]:
    import pydicom

    return [str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in paths]


def bare_pool(paths: list[Path], processes: int, chunk: int) -> float:
    """Files per second of bare header reads in a pool of `processes` (a loop when it is 1)."""
    import multiprocessing

    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    started = time.perf_counter()
    if processes == 1:
        uids = [uid for c in chunks for uid in _bare_chunk(c)]
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            uids = [uid for done in pool.imap(_bare_chunk, chunks) for uid in done]
    rate = len(paths) / (time.perf_counter() - started)
    assert len(set(uids)) == len(paths), "every file read once"
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["DJANGO_SETTINGS_MODULE"] = "capture.settings.test"
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import pydicom

        from capture.accounts.system import SYSTEM
        from capture.definitions.loader import load_definitions
        from capture.definitions.models import Schedule
        from capture.imaging import services as imaging
        from capture.imaging.dicomread import CHUNK, workers
        from capture.imaging.ingest import ingest_folder
        from capture.studies import services

        load_definitions([ROOT / "fixtures" / "definitions" / "basic"], actor=SYSTEM)
        study = services.create_study(
            actor=SYSTEM, slug="bench", name="Bench", schedule=Schedule.objects.get(name="basic")
        )
        site = services.add_site(actor=SYSTEM, study=study, code="A", name="A")
        for patient in range(25):  # half the patients are known subjects, half go to the queue
            subject = services.enroll_subject(
                actor=SYSTEM, study=study, site=site, enrollment_date=dt.date(2025, 3, 1)
            )
            imaging.add_identifier(
                actor=SYSTEM, subject=subject, kind="patient_id", value=f"BENCH-{patient:03d}"
            )

        folder = tmp / "dicom"
        folder.mkdir()
        started = time.perf_counter()
        paths = make_files(folder, args.files)
        print(f"wrote {len(paths)} files in {time.perf_counter() - started:.1f} s")

        processes = args.processes or workers()
        pooled = bare_pool(paths, processes, CHUNK)
        started = time.perf_counter()
        for path in paths:
            pydicom.dcmread(path, stop_before_pixels=True)
        loop = len(paths) / (time.perf_counter() - started)

        started = time.perf_counter()
        report = ingest_folder(actor=SYSTEM, study=study, path=folder, processes=processes)
        elapsed = time.perf_counter() - started
        rate = len(paths) / elapsed
        assert report.instances_new == len(paths), report.as_dict()

        started = time.perf_counter()
        again = ingest_folder(actor=SYSTEM, study=study, path=folder, processes=processes)
        reingest = len(paths) / (time.perf_counter() - started)
        assert again.instances_new == 0

        print(f"bare pydicom header reads, pool of {processes}:  {pooled:8.0f} files/s")
        print(f"bare pydicom header loop, 1 process:    {loop:8.0f} files/s  (reference)")
        print(
            f"ingest_folder end to end, {processes} processes: {rate:8.0f} files/s "
            f"({elapsed:.2f} s; {report.studies_new} studies, {report.linked} linked, {report.queued} queued)"
        )
        print(f"re-ingest (adds nothing), {processes} processes: {reingest:8.0f} files/s")
        print(f"ingest / bare pool ({processes} processes each) = {rate / pooled:.0%} (target >= 70%)")
        print(f"ingest / bare 1-process loop = {rate / loop:.0%} (the figure this benchmark used to report)")


if __name__ == "__main__":
    main()
