"""The demo study: built from the shipped definitions through the services."""

from django.test import Client
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.audit.services import verify_all
from capture.definitions.loader import load_definitions
from capture.demo import study as demo
from capture.imaging.models import ImagingStudy
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies.models import Subject
from tests.conftest import ROOT


def test_demo_study_has_sites_patients_models_records_and_one_user_per_role(db):
    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    result = demo.seed(patients=9, models=3)
    study = result.study
    assert result.created and study.sites.count() == 3
    assert Subject.objects.filter(study=study, kind="patient").count() == 9
    models = Subject.objects.filter(study=study, kind="animal")
    assert models.count() == 3 and all(m.derived_from and m.model_type == "PDX" for m in models)
    assert FormRecord.objects.filter(subject__study=study).exists()
    scans = ImagingStudy.objects.filter(study=study)
    assert scans.filter(subject__isnull=False).exists(), "linked scans for the timeline"
    assert scans.unassigned().exists(), "scans waiting in the queue for the data manager"
    assert {role for role, _ in result.passwords.values()} == {
        "study_admin",
        "pi",
        "data_manager",
        "coordinator",
        "statistician",
        "monitor",
    }
    assert verify_all()[1] == []
    # The seed acts as the labelled system actor, not as the demo's admin user.
    labels = set(AuditEvent.objects.filter(study=study).values_list("actor_label", flat=True))
    assert labels == {"system: demo"}

    coordinator = type(study.memberships.first().user).objects.get(username="coordinator_bos")
    visible = access.subjects_visible_to(coordinator, study)
    assert visible.exists() and set(visible.values_list("site__code", flat=True)) == {"BOS"}

    # The printed password works on the log-in page.
    client = Client()
    response = client.post(
        reverse("login"), {"username": "statistician", "password": result.passwords["statistician"][1]}
    )
    assert response.status_code == 302


def test_seeding_again_keeps_the_study_and_resets_passwords(db):
    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    first = demo.seed(patients=3, models=1, imaging=False)
    second = demo.seed(patients=3, models=1, imaging=False)
    assert not second.created and second.study == first.study
    assert Subject.objects.count() == 4
    assert second.passwords["pi"][1] != first.passwords["pi"][1]
