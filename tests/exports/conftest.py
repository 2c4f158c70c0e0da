"""Records for export tests: two patients (sites A and B) and a PDX model, on the basic schedule;
and `registry`, a second study whose form holds identifier items (an MRN, a date of birth) next to
a date of diagnosis, a score and a free-text note, with three patients under fixed date shifts."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.exports.services import export_dataset
from capture.exports.spec import ExportSpec
from capture.records.services import save_record
from capture.studies import services
from capture.studies.models import Study, Subject

REGISTRY_DEFINITIONS = Path(__file__).resolve().parent / "definitions" / "registry"


@pytest.fixture
def records(subjects, personas):
    admin = personas["admin"]
    a, b, model = subjects["a"], subjects["b"], subjects["model"]

    def save(subject, event, form, values, instance=1, status=2):
        return save_record(
            actor=admin,
            subject=subject,
            event_name=event,
            form_name=form,
            values=values,
            status=status,
            instance=instance,
        )

    save(
        a,
        "baseline",
        "demographics",
        {
            "initials": "ABC",
            "sex": "1",
            "age": 54,
            "weight": "70.5",
            "smoker": "1",
            "symptoms": ["pain", "nausea"],
            "er_status": "pos",
            "pr_status": "neg",
        },
    )
    save(
        b,
        "baseline",
        "demographics",
        {
            "initials": "XY",
            "sex": "2",
            "age": "UNK",
            "weight": "81.2",
            "smoker": "0",
            "symptoms": [],
            "er_status": "NA",
            "pr_status": "pos",
        },
        status=1,
    )
    save(
        a,
        "baseline",
        "lesions",
        {
            "visit_date": "2025-03-03",
            "target_lesions": [
                {"lesion_site": "liver", "lesion_diameter": "12.5"},
                {"lesion_site": '=HYPERLINK("http://x")', "lesion_diameter": "8"},
            ],
        },
    )
    save(
        a,
        "week_8",
        "lesions",
        {"visit_date": "2025-04-28", "target_lesions": [{"lesion_site": "liver", "lesion_diameter": "10.0"}]},
    )
    save(a, "week_8", "lesions", {"visit_date": "2025-05-05"}, instance=2)
    save(b, "baseline", "lesions", {"visit_date": "UNK"}, status=0)
    save(model, "implant", "animal", {"strain": "NSG"})
    return subjects


@pytest.fixture
def run_export(tmp_path):
    """Export as `user`; returns (zip path, manifest, folder with the unpacked files)."""

    def run(user, study, **options):
        spec = ExportSpec(**options)
        result = export_dataset(actor=user, study=study, spec=spec, output_dir=tmp_path / "out")
        unpacked = tmp_path / f"unpacked-{result.path.stem}"
        with zipfile.ZipFile(result.path) as bundle:
            bundle.extractall(unpacked)
        return result.path, result.manifest, Path(unpacked)

    return run


# subject -> (MRN, date of birth, date of diagnosis, date shift, score, note)
PATIENTS = [
    ("MRN-4471", "1965-07-03", "2025-03-03", -100, 5, '=HYPERLINK("http://evil.example/","x")'),
    ("MRN-5582", "1970-01-15", "2025-01-01", -10, -3, "plain words"),
    ("MRN-6693", "1980-12-31", "2024-11-01", 0, 12, "+1 more"),
]


@dataclass
class Registry:
    study: Study
    subjects: list[Subject]  # in PATIENTS order
    admin: object
    pi: object
    statistician: object


@pytest.fixture
def registry(make_user) -> Registry:
    load_definitions([REGISTRY_DEFINITIONS], actor=SYSTEM)
    schedule = Schedule.objects.get(name="registry", version="1.0")
    admin = make_user("registry_admin", is_staff=True)
    study = services.create_study(actor=admin, slug="registry", name="Registry", schedule=schedule)
    site = services.add_site(actor=admin, study=study, code="A", name="Site A")
    services.grant_role(actor=SYSTEM, study=study, user=admin, role="study_admin", sites=[])
    pi = make_user("registry_pi")
    services.grant_role(actor=SYSTEM, study=study, user=pi, role="pi", sites=[])
    statistician = make_user("registry_statistician")
    services.grant_role(actor=SYSTEM, study=study, user=statistician, role="statistician", sites=[])
    subjects = []
    for mrn, born, diagnosed, shift, score, note in PATIENTS:
        subject = services.enroll_subject(
            actor=admin, study=study, site=site, enrollment_date=dt.date(2025, 3, 1)
        )
        # Fixed shifts, so what a filter on shifted dates keeps is known by hand.
        Subject.objects.filter(pk=subject.pk).update(date_shift_days=shift)
        subject.refresh_from_db()
        save_record(
            actor=admin,
            subject=subject,
            event_name="baseline",
            form_name="registry",
            values={
                "medical_record_number": mrn,
                "date_of_birth": born,
                "diagnosis_date": diagnosed,
                "score": score,
                "stage": "1" if score > 0 else "2",
                "note": note,
            },
            status=2,
        )
        subjects.append(subject)
    return Registry(study, subjects, admin, pi, statistician)


@pytest.fixture
def demo(db):
    """The demo study of the shipped definitions (tests/demo builds it the same way), small: four
    patients at three sites, two PDX models, imaging studies linked to them."""
    from capture.demo import study as demo_study
    from tests.conftest import ROOT

    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    return demo_study.seed(patients=4, models=2)
