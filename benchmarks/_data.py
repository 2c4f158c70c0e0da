"""Benchmark data shared by the scripts in benchmarks/: a study of N subjects × 8 events × 60 items.

`write_definitions(folder)` writes the YAML of 4 forms × 15 items of mixed types (integers, decimals,
dates, coded values, free text, yes/no, checkboxes) and a one-arm schedule of 8 events collecting all
four; `build_study(...)` loads them into the configured database (django.setup() already called),
makes the study, one site, one user with a role, the subjects and every form record.

Records are written with bulk_create, not the record service, and no audit events are made: it is
benchmark data in a database made for the run, never a study's data. The values are what the record
service would store (validation.py: ints, floats, ISO dates, "1"/"0", sorted code lists; no key for an unticked checkbox), so an
import of them back through the record service finds nothing to change.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import time
from pathlib import Path

EVENTS = 8
FORMS = 4
ITEMS_PER_FORM = 15
KINDS = ["integer", "decimal", "date", "code", "text", "boolean", "checkbox"]
CODES = ("alpha", "beta", "gamma")


def item_kind(n: int) -> str:
    return KINDS[n % len(KINDS)]


def write_definitions(folder: Path, schedule: str = "bench") -> None:
    """elements.yaml, bench_f1..4.yaml and schedule.yaml in `folder`."""
    import yaml

    elements, forms = [], []
    for f in range(1, FORMS + 1):
        items = []
        for i in range(1, ITEMS_PER_FORM + 1):
            n = (f - 1) * ITEMS_PER_FORM + i
            kind = item_kind(n)
            element = {
                "public_id": f"capture.bench_{n:02d}",
                "version": "1.0",
                "name": f"i{n:02d}",
                "long_name": f"Bench item {n}",
                "question": f"Benchmark item {n}",
                "datatype": "text" if kind in ("code", "checkbox") else kind,
            }
            if kind in ("code", "checkbox"):
                element["permissible_values"] = [{"code": c, "meaning": c.title()} for c in CODES]
            if kind == "decimal":
                element["decimal_places"] = 1
            elements.append(element)
            item = {"element": f"capture.bench_{n:02d}@1.0"}
            if kind == "checkbox":
                item["widget"] = "checkbox"
            items.append(item)
        forms.append(
            {
                "form": f"bench_f{f}",
                "version": "1.0",
                "title": f"Bench form {f}",
                "sections": [{"title": "S", "items": items}],
            }
        )
    (folder / "elements.yaml").write_text(yaml.safe_dump({"elements": elements}))
    for form in forms:
        (folder / f"{form['form']}.yaml").write_text(yaml.safe_dump(form))
    events = [
        {
            "name": f"e{e}",
            "title": f"Event {e}",
            "day": 28 * (e - 1),
            "forms": [f"bench_f{f}@1.0" for f in range(1, FORMS + 1)],
        }
        for e in range(1, EVENTS + 1)
    ]
    plan = {
        "schedule": schedule,
        "version": "1.0",
        "title": "Bench",
        "arms": [{"name": "patients", "title": "P", "events": events}],
    }
    (folder / "schedule.yaml").write_text(yaml.safe_dump(plan))


def value(kind: str, rng: random.Random, day: int):
    """A stored value of `kind`, as the record service stores it."""
    if kind == "integer":
        return rng.randint(0, 1000)
    if kind == "decimal":
        return round(rng.uniform(0, 200), 1)
    if kind == "date":
        return f"2025-{1 + day % 12:02d}-{1 + rng.randint(0, 27):02d}"
    if kind == "code":
        return rng.choice(CODES)
    if kind == "boolean":
        return rng.choice(["0", "1"])
    if kind == "checkbox":
        return sorted(rng.sample(CODES, rng.randint(0, 2))) or None  # none ticked: not stored
    return rng.choice(["stable", "progressing", "resolved", "not assessed"]) + f" {rng.randint(1, 99)}"


def build_study(subjects: int, *, username: str, role: str, slug: str = "bench") -> dict:
    """Load the definitions, make study `slug` (site S), `username` with `role`, the subjects and
    their records. Returns {"study", "user", "records", "setup_s"}."""
    from django.contrib.auth import get_user_model

    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import EventForm, Schedule
    from capture.records.models import FormRecord
    from capture.studies import services
    from capture.studies.models import Subject

    with tempfile.TemporaryDirectory() as folder:
        write_definitions(Path(folder))
        load_definitions([Path(folder)], actor=SYSTEM)
    schedule = Schedule.objects.get(name="bench")
    user = get_user_model().objects.create_user(username, password="bench-password-not-secret")  # noqa: S106 - a throw-away benchmark user
    study = services.create_study(actor=SYSTEM, slug=slug, name="Bench", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="S", name="Site")
    services.grant_role(actor=SYSTEM, study=study, user=user, role=role)
    arm = schedule.arms.get()
    rng = random.Random(5)  # noqa: S311 - reproducible fake data, nothing secret
    start = time.perf_counter()
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
                date_shift_days=-rng.randint(30, 365),
            )
            for n in range(1, subjects + 1)
        ],
        batch_size=2000,
    )
    slots = list(EventForm.objects.filter(event__arm=arm).select_related("form", "event"))
    kinds = {f"i{n:02d}": item_kind(n) for n in range(1, FORMS * ITEMS_PER_FORM + 1)}
    batch: list[FormRecord] = []
    for subject_pk in Subject.objects.filter(study=study).values_list("pk", flat=True):
        for ef in slots:
            data = {item["name"]: value(kinds[item["name"]], rng, ef.event.day) for item in ef.form.items()}
            data = {name: v for name, v in data.items() if v is not None}
            batch.append(
                FormRecord(
                    subject_id=subject_pk,
                    event=ef.event,
                    form=ef.form,
                    form_name=ef.form.name,
                    instance=1,
                    status=2,
                    data=data,
                )
            )
        if len(batch) >= 5000:
            FormRecord.objects.bulk_create(batch)
            batch = []
    FormRecord.objects.bulk_create(batch)
    return {
        "study": study,
        "user": user,
        "records": FormRecord.objects.filter(subject__study=study).count(),
        "setup_s": round(time.perf_counter() - start, 1),
    }
