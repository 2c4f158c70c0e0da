"""Benchmark of the data quality rules (issue 16): every rule over a study in one background job.

    .venv/bin/python benchmarks/dq_bench.py                    # toy size (CI): 50 subjects
    .venv/bin/python benchmarks/dq_bench.py --subjects 10000   # the issue's size

Builds a throw-away SQLite database with N subjects × 8 events × 60 items (benchmarks/_data.py's
four forms of 15 items), its definitions given what the rules read: a required item per form,
ranges on integers, a branching and a calculation on every eighth item, @NOMISSING on dates, a
rule in each form's YAML and one written on the web per form. Then, in one process and one run:
- the floor: a bare pass over the same records' JSON (one SELECT, each value touched);
- the rules: `monitoring.jobs.start`, run by the job machinery (the immediate task backend), to
  the stored findings.
Prints both times, their ratio (target ≤ 3×) and the measuring process's peak RSS. Each time is
given as wall time and as the process's CPU time: on a shared machine the wall times of the two
passes see different loads, their CPU times do not (the run's commits are the difference).

Setup writes records with bulk_create, not the record service: it is benchmark data in a
database made for the run, never a study's data.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import _phases  # noqa: E402 - after the path that finds it
from benchmarks._phases import django_setup  # noqa: E402

TARGET = 3.0
# benchmarks/_data.py's kinds and one more: a calculated integer that is never stored (its
# calculation gives blank on these data, so the stored and calculated values agree).
KINDS = ["integer", "decimal", "date", "code", "text", "boolean", "checkbox", "calc"]


def _with_rules(write_definitions):
    """_data.write_definitions, then the rules' parts added to its YAML."""

    def write(folder: Path, schedule: str = "bench", kinds=KINDS) -> None:
        import yaml

        write_definitions(folder, schedule=schedule, kinds=kinds)
        elements = yaml.safe_load((folder / "elements.yaml").read_text())
        for element in elements["elements"]:
            if element["datatype"] == "calc":
                element["datatype"] = "integer"
            if element["datatype"] == "integer":
                element["min"], element["max"] = 0, 995  # values run to 1000: a few are out of range
        (folder / "elements.yaml").write_text(yaml.safe_dump(elements))
        for path in sorted(folder.glob("bench_f*.yaml")):
            form = yaml.safe_load(path.read_text())
            items = form["sections"][0]["items"]
            numbers = [int(i["element"].split("_")[1].split("@")[0]) for i in items]
            decimal = next(f"i{n:02d}" for n in numbers if kinds[n % len(kinds)] == "decimal")
            for item, n in zip(items, numbers, strict=True):
                kind = kinds[n % len(kinds)]
                if kind == "calc":
                    item["calculation"] = f"if([{decimal}] > 5000, 1, '')"
                    item["branching"] = f"[{decimal}] <> ''"
                if kind == "date":
                    item["annotation"] = "@NOMISSING"
                if kind in ("decimal", "text"):
                    item["required"] = True
            form["data_quality"] = [
                {
                    "name": f"r_{path.stem}",
                    "title": "Impossible weight",
                    "field": decimal,
                    "expression": f"[{decimal}] < 0 and [{decimal}] <> ''",
                }
            ]
            path.write_text(yaml.safe_dump(form))

    return write


def seed(db: str, subjects: int) -> dict:
    django_setup(db)
    from django.core.management import call_command

    from benchmarks import _data
    from capture.monitoring.models import QualityRule

    call_command("migrate", verbosity=0)
    _data.write_definitions = _with_rules(_data.write_definitions)
    real_value = _data.value
    _data.value = lambda kind, rng, day: None if kind == "calc" else real_value(kind, rng, day)
    built = _data.build_study(subjects, username="bench_monitor", role="monitor", kinds=KINDS)
    for f in range(1, _data.FORMS + 1):
        numbers = range((f - 1) * _data.ITEMS_PER_FORM + 1, f * _data.ITEMS_PER_FORM + 1)
        decimal = next(f"i{n:02d}" for n in numbers if KINDS[n % len(KINDS)] == "decimal")
        QualityRule.objects.create(
            study=built["study"],
            name=f"web_{f}",
            title="Too large",
            form_name=f"bench_f{f}",
            expression=f"[{decimal}] > 199.9 and [e1][{decimal}] <> ''",
            field=decimal,
            created_by=built["user"],
        )
    return {"records": built["records"], "setup_s": built["setup_s"]}


def measure(db: str) -> dict:
    django_setup(db)
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from capture.jobs.models import Job
    from capture.monitoring import jobs
    from capture.records.models import FormRecord
    from capture.studies.models import Study

    # A worker has its modules loaded and its URLs resolved before it takes a job: so here.
    reverse("monitoring:data_quality", args=["bench"])
    study = Study.objects.get(slug="bench")
    user = get_user_model().objects.get(username="bench_monitor")
    start, cpu = time.perf_counter(), time.process_time()
    values = 0
    records = FormRecord.objects.filter(subject__study=study).values_list("data", flat=True)
    for data in records.iterator(chunk_size=2000):
        for value in data.values():
            values += value is not None
    bare, bare_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    job = jobs.start(actor=user, study=study)  # autocommit: the immediate backend runs it now
    rules, rules_cpu = time.perf_counter() - start, time.process_time() - cpu
    job = Job.objects.get(pk=job.pk)
    if job.status != Job.SUCCEEDED:
        raise SystemExit(f"The job failed: {job.error}")
    return {
        "values": values,
        "bare_s": round(bare, 2),
        "rules_s": round(rules, 2),
        "bare_cpu_s": round(bare_cpu, 2),
        "rules_cpu_s": round(rules_cpu, 2),
        "found": job.result["found"],
        "records": job.result["records"],
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ran = _phases.run(
        doc=__doc__ or "", script=__file__, cwd=str(ROOT), prefix="dq-bench-", seed=seed, measure=measure
    )
    if ran is None:
        return
    args, made, got = ran
    ratio = got["rules_s"] / max(got["bare_s"], 1e-6)
    cpu_ratio = got["rules_cpu_s"] / max(got["bare_cpu_s"], 1e-6)
    print(
        f"{args.subjects:,} subjects, {made['records']:,} records × 60 items (setup {made['setup_s']} s, SQLite)"
    )
    print(
        f"bare pass over the records' JSON: {got['bare_s']} s, CPU {got['bare_cpu_s']} s ({got['values']:,} values)"
    )
    print(
        f"every rule, one background job:   {got['rules_s']} s, CPU {got['rules_cpu_s']} s "
        f"({got['records']:,} records, {got['found']:,} findings)"
    )
    print(
        f"ratio {ratio:.2f}× wall, {cpu_ratio:.2f}× CPU (target ≤ {TARGET:g}×); peak RSS {got['rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
