"""Benchmark of the response computation (issue 17): RECIST 1.1 for every subject of a study, from
the stored measurements, through `compute.recompute_study` (what a change of the study's response
rule runs as a background job).

    .venv/bin/python benchmarks/response_bench.py                    # toy size (CI): 50 subjects
    .venv/bin/python benchmarks/response_bench.py --subjects 10000   # the issue's size

Builds a throw-away SQLite database with N subjects × 8 timepoints (one report per event, days 0
to 196) × 5 lesions (three targets, one of them a lymph node measured on both axes, and two
non-targets): N × 8 reports, N × 5 lesions, N × 56 measurements, written with bulk_create (benchmark
data in a database made for the run, never a study's data). Then, in a second process, recomputes
every subject's responses and prints the seconds, the rows stored and the process's peak RSS.
"""

from __future__ import annotations

import datetime as dt
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import _phases  # noqa: E402 - after the path that finds it
from benchmarks._phases import django_setup  # noqa: E402

TIMEPOINTS = 8
# (tracking id, role, node, baseline long axis, baseline short axis or None)
LESIONS = [
    ("T1", "target", False, 42, None),
    ("T2", "target", False, 25, None),
    ("N1", "target", True, 24, 17),
    ("NT1", "non_target", False, 14, None),
    ("NT2", "non_target", True, 13, 11),
]


def _study(subjects: int):
    """The study (benchmarks/_data.py's 8-event schedule), its site and `subjects` patients."""
    from benchmarks import _data
    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.studies import services
    from capture.studies.models import Subject

    with tempfile.TemporaryDirectory() as folder:
        _data.write_definitions(Path(folder))
        load_definitions([Path(folder)], actor=SYSTEM)
    schedule = Schedule.objects.get(name="bench")
    study = services.create_study(actor=SYSTEM, slug="bench", name="Bench", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="S", name="Site")
    arm = schedule.arms.get()
    Subject.objects.bulk_create(
        [
            Subject(
                study=study,
                site=site,
                arm=arm,
                subject_id=f"S-{n:05d}",
                seq=n,
                kind="patient",
                enrollment_date=dt.date(2025, 1, 1) + dt.timedelta(days=n % 300),
                date_shift_days=-(30 + n % 300),
            )
            for n in range(1, subjects + 1)
        ],
        batch_size=2000,
    )
    return study, [event.name for event in arm.events.order_by("order")]


def _measurements(rng: random.Random, report, lesions, trend: float, step: int) -> list:
    from capture.measurements import concepts
    from capture.measurements.models import Measurement

    factor = max(0.0, 1 + trend * step + rng.uniform(-0.05, 0.05))
    rows = []
    for lesion, (_, _, node, long, short) in zip(lesions, LESIONS, strict=True):
        axes = [(concepts.LONG_AXIS, long)] + ([(concepts.SHORT_AXIS, short)] if node else [])
        for (scheme, code, meaning), size in axes:
            value = round(size * factor, 1)
            rows.append(
                Measurement(
                    report=report,
                    lesion=lesion,
                    concept_scheme=scheme,
                    concept_code=code,
                    concept_meaning=meaning,
                    value=value,
                    unit="mm",
                )
            )
    return rows


def _seed_part(study, part, events, rng) -> None:
    """Lesions, reports and measurements of some subjects, a bulk insert per table."""
    from capture.measurements.models import Lesion, Measurement, MeasurementReport

    lesions = Lesion.objects.bulk_create(
        [
            Lesion(study=study, subject=subject, tracking_id=tid, role=role, is_node=node, site_meaning=tid)
            for subject in part
            for tid, role, node, _, _ in LESIONS
        ],
        batch_size=2000,
    )
    reports = MeasurementReport.objects.bulk_create(
        [
            MeasurementReport(
                study=study,
                subject=subject,
                source_kind=MeasurementReport.SHEET,
                source="bench",
                sop_uid=f"sheet:bench:{subject.pk}:{step}",
                report_date=subject.enrollment_date + dt.timedelta(days=28 * step + subject.date_shift_days),
                event=events[step],
            )
            for subject in part
            for step in range(TIMEPOINTS)
        ],
        batch_size=2000,
    )
    batch: list = []
    for index in range(len(part)):
        own = lesions[index * len(LESIONS) : (index + 1) * len(LESIONS)]
        trend = rng.choice([-0.12, -0.06, 0.0, 0.05, 0.25])  # responders, partial, stable, slow and fast PD
        for step in range(TIMEPOINTS):
            batch += _measurements(rng, reports[index * TIMEPOINTS + step], own, trend, step)
    Measurement.objects.bulk_create(batch, batch_size=5000)


def seed(db: str, subjects: int) -> dict:
    django_setup(db)
    from django.core.management import call_command
    from django.db import transaction

    from capture.measurements.models import Measurement
    from capture.studies.models import Subject

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    study, events = _study(subjects)
    rng = random.Random(17)  # noqa: S311 - reproducible fake data, nothing secret
    everyone = list(Subject.objects.filter(study=study).order_by("pk"))
    for first in range(0, len(everyone), 500):
        with transaction.atomic():
            _seed_part(study, everyone[first : first + 500], events, rng)
    return {"measurements": Measurement.objects.count(), "setup_s": round(time.perf_counter() - start, 1)}


def measure(db: str) -> dict:
    django_setup(db)
    from capture.measurements.compute import recompute_study
    from capture.measurements.models import BestResponse, TimepointResponse
    from capture.studies.models import Study

    study = Study.objects.get(slug="bench")
    start = time.perf_counter()
    subjects = recompute_study(study)
    seconds = time.perf_counter() - start
    best = dict.fromkeys(("CR", "PR", "SD", "PD", "NE"), 0)
    for response in BestResponse.objects.values_list("response", flat=True):
        best[response] = best.get(response, 0) + 1
    return {
        "subjects": subjects,
        "seconds": round(seconds, 2),
        "timepoints": TimepointResponse.objects.count(),
        "best": best,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ran = _phases.run(
        doc=__doc__ or "",
        script=__file__,
        cwd=str(ROOT),
        prefix="response-bench-",
        seed=seed,
        measure=measure,
    )
    if ran is None:
        return
    args, made, got = ran
    print(
        f"{args.subjects:,} subjects × {TIMEPOINTS} timepoints × {len(LESIONS)} lesions: "
        f"{made['measurements']:,} measurements (setup {made['setup_s']} s, SQLite)"
    )
    print(
        f"recompute_study: {got['seconds']} s for {got['subjects']:,} subjects "
        f"({got['seconds'] / max(got['subjects'], 1) * 1000:.1f} ms each), {got['timepoints']:,} timepoint rows"
    )
    print(f"best overall responses: {got['best']}; peak RSS {got['rss_mb']} MB")


if __name__ == "__main__":
    main()
