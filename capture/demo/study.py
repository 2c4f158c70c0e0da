"""The demo co-clinical study: 3 sites, 60 patients, 20 PDX models, some form records,
and one user per role. Everything is written through the services, so the demo's
audit trail verifies like a real one. Values are generated from the form
definitions, so the demo follows whatever crf_definitions/ holds."""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from capture.definitions.expressions import fields_used
from capture.definitions.models import DataElement, EventForm, Schedule
from capture.records.models import Status
from capture.records.services import RecordValidationError, save_record
from capture.studies import services
from capture.studies.models import Study, Subject

from .imaging import DEMO, seed_imaging

DEMO_SLUG = "qin-coclinical-demo"
SCHEDULE_REF = ("qin_coclinical", "1.1")
SITES = [
    ("BOS", "Boston Imaging Center"),
    ("STL", "St. Louis Co-Clinical Lab"),
    ("SFO", "Bay Area Cancer Institute"),
]
USERS = [
    # username, role, site codes (for roles limited to sites)
    ("admin", "study_admin", []),
    ("pi", "pi", []),
    ("datamanager", "data_manager", []),
    ("coordinator_bos", "coordinator", ["BOS"]),
    ("coordinator_stl", "coordinator", ["STL"]),
    ("statistician", "statistician", []),
    ("monitor", "monitor", []),
]


@dataclass
class DemoResult:
    study: Study
    passwords: dict[str, tuple[str, str]]  # username -> (role, password)
    created: bool


def _password() -> str:
    return secrets.token_urlsafe(12)


def seed(*, patients: int = 60, models: int = 20, seed_value: int = 7, imaging: bool = True) -> DemoResult:
    User = get_user_model()  # noqa: N806 - Django's idiom
    passwords: dict[str, tuple[str, str]] = {}
    users = {}
    for username, role, _ in USERS:
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
        password = _password()
        user.set_password(password)
        # The study administrator also runs Django's admin for set-up.
        user.is_staff = user.is_superuser = username == "admin"
        user.save()
        users[username] = user
        passwords[username] = (role, password)

    study = Study.objects.filter(slug=DEMO_SLUG).first()
    if study is not None:
        return DemoResult(study, passwords, created=False)

    rng = random.Random(seed_value)
    schedule = Schedule.objects.get(name=SCHEDULE_REF[0], version=SCHEDULE_REF[1])
    with transaction.atomic():
        study = services.create_study(
            actor=DEMO,
            slug=DEMO_SLUG,
            name="QIN Co-Clinical Imaging (demo)",
            schedule=schedule,
            description="A demonstration co-clinical study: patients and the PDX models derived from them.",
        )
        sites = {
            code: services.add_site(actor=DEMO, study=study, code=code, name=name) for code, name in SITES
        }
        for username, role, codes in USERS:
            services.grant_role(
                actor=DEMO, study=study, user=users[username], role=role, sites=[sites[c] for c in codes]
            )
        today = dt.date.today()  # noqa: DTZ011 - demo dates are calendar dates
        patient_rows = []
        for n in range(patients):
            site = list(sites.values())[n % len(sites)]
            enrolled = today - dt.timedelta(days=rng.randint(30, 720))
            patient_rows.append(
                services.enroll_subject(actor=DEMO, study=study, site=site, enrollment_date=enrolled)
            )
        donors = rng.sample(patient_rows, k=min(models, len(patient_rows)))
        model_rows = [
            services.enroll_subject(
                actor=DEMO,
                study=study,
                site=donor.site,
                kind=Subject.ANIMAL,
                derived_from=donor,
                model_type="PDX",
                enrollment_date=min(today, donor.enrollment_date + dt.timedelta(days=rng.randint(14, 60))),
            )
            for donor in donors
        ]
        for subject in patient_rows + model_rows:
            _fill_records(subject, DEMO, rng)
    if imaging and patients:
        # Scans for most patients, linked by a registered PatientID; two wait in the assignment queue.
        queued = min(2, patients)
        seed_imaging(study, patients=min(12, patients - queued), queued=queued)
    return DemoResult(study, passwords, created=True)


def _fill_records(subject: Subject, actor, rng: random.Random) -> None:
    event_forms = list(EventForm.objects.filter(event__arm=subject.arm).select_related("event", "form"))
    # Earlier events are more often done: a realistic dashboard has a front of progress.
    reached = rng.randint(1, max(1, len({ef.event_id for ef in event_forms})))
    for ef in event_forms:
        if ef.event.order >= reached or rng.random() < 0.15:
            continue
        instances = rng.randint(1, 3) if ef.repeating else 1
        for instance in range(1, instances + 1):
            status = rng.choice([Status.INCOMPLETE, Status.UNVERIFIED, Status.COMPLETE, Status.COMPLETE])
            values = _values_for(ef.form, subject, ef.event.day, rng)
            # Random values can break a rule that spans fields (a calculated BMI out of range,
            # a required item behind branching): drop what was refused and save the rest.
            for attempt in range(4):
                try:
                    save_record(
                        actor=actor,
                        subject=subject,
                        event_name=ef.event.name,
                        form_name=ef.form.name,
                        values=values,
                        status=status,
                        instance=instance,
                    )
                    break
                except RecordValidationError as exc:
                    if attempt == 3:
                        raise
                    status = Status.INCOMPLETE
                    values = _without_refused(ef.form, values, exc.field_errors)


def _without_refused(form, values: dict, errors: dict) -> dict:
    calculations = {item["name"]: item.get("calculation") for item in form.items()}
    drop: set[str] = set()
    for key in errors:
        name = key.split("[")[0].split(".")[0]
        drop |= fields_used(calculations[name]) if calculations.get(name) else {name}
    return {k: v for k, v in values.items() if k not in drop}


def _values_for(form, subject: Subject, day: int, rng: random.Random) -> dict:
    elements = {
        e.ref: e for e in DataElement.objects.filter(forms=form).prefetch_related("permissible_values")
    }
    values: dict = {}
    for section in form.spec["sections"]:
        for entry in section["items"]:
            if "group" in entry and entry["repeating"]:
                rows = [
                    {
                        i["name"]: _value(i, elements[i["element"]], subject, day, rng)
                        for i in entry["items"]
                        if not i.get("branching") and not i.get("calculation")
                    }
                    for _ in range(rng.randint(1, min(3, entry.get("max_repeats") or 3)))
                ]
                values[entry["group"]] = rows
                continue
            for item in entry["items"] if "group" in entry else [entry]:
                # Items behind branching logic or calculated are left to data entry.
                if item.get("branching") or item.get("calculation"):
                    continue
                values[item["name"]] = _value(item, elements[item["element"]], subject, day, rng)
    return values


def _value(item: dict, element: DataElement, subject: Subject, day: int, rng: random.Random):
    codes = [pv.code for pv in element.permissible_values.all()]
    if codes:
        if item.get("widget") == "checkbox":
            return rng.sample(codes, k=rng.randint(1, min(2, len(codes))))
        return rng.choice(codes)
    kind = element.datatype
    low = float(element.min_value) if element.min_value and kind in ("integer", "decimal") else 0
    high = float(element.max_value) if element.max_value and kind in ("integer", "decimal") else 100
    if kind == "integer":
        return rng.randint(int(low), int(max(low, min(high, low + 100))))
    if kind == "decimal":
        places = element.decimal_places if element.decimal_places is not None else 1
        return round(rng.uniform(low, max(low, min(high, low + 100))), places)
    if kind == "date":
        when = subject.enrollment_date + dt.timedelta(days=day + rng.randint(-3, 3))
        if element.identifier:  # a date of birth, say: decades before enrolment
            when = subject.enrollment_date - dt.timedelta(days=rng.randint(40 * 365, 80 * 365))
        return min(when, dt.date.today()).isoformat()  # noqa: DTZ011
    if kind == "datetime":
        return f"{subject.enrollment_date.isoformat()} {rng.randint(8, 17):02d}:{rng.choice(['00', '15', '30', '45'])}"
    if kind == "time":
        return f"{rng.randint(8, 17):02d}:{rng.choice(['00', '30'])}"
    if kind == "boolean":
        return rng.choice(["0", "1"])
    if kind == "file":
        return ""
    text = f"Demo {element.name.replace('_', ' ')} {rng.randint(1, 99)}"
    return text[: element.max_length] if element.max_length else text
