"""REDCap names for a field two forms share (issue 13, item 2): the demo's animal_weight_g is on
animal_model (implantation) and animal_imaging_handling (imaging); each gets its own REDCap column,
so the API export gives both values instead of one value twice."""

from __future__ import annotations

import csv
import datetime as dt
import io

from capture.accounts.system import SYSTEM
from capture.api import tokens
from capture.api.redcap.project import Project, metadata
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.records.services import save_record
from capture.studies import services
from tests.conftest import ROOT


def test_a_field_on_two_forms_exports_both_values_under_two_names(client, make_user):
    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    boss = make_user("boss", is_staff=True)
    study = services.create_study(
        actor=boss, slug="coclin", name="Co-clinical", schedule=Schedule.objects.get(name="qin_coclinical")
    )
    site = services.add_site(actor=boss, study=study, code="A", name="Site A")
    services.grant_role(actor=boss, study=study, user=boss, role="study_admin")
    mouse = services.enroll_subject(
        actor=boss, study=study, site=site, enrollment_date=dt.date(2025, 1, 6), kind="animal"
    )
    save_record(
        actor=boss,
        subject=mouse,
        event_name="implantation",
        form_name="animal_model",
        values={"animal_weight_g": "71.7"},
    )
    save_record(
        actor=boss, subject=mouse, event_name="imaging_1", form_name="animal_imaging_handling", values={"animal_weight_g": "25.0"}
    )  # fmt: skip

    project = Project(study)
    names = [
        row["field_name"] for row in metadata(project) if row["field_name"].startswith("animal_weight_g")
    ]
    assert names == ["animal_weight_g", "animal_weight_g_animal_imaging_handling"]

    token = tokens.create_redcap_token(user=boss, study=study)[1]
    response = client.post("/redcap/api/", {"token": token, "content": "record", "format": "csv", "fields[0]": "animal_weight_g", "fields[1]": "animal_weight_g_animal_imaging_handling"})  # fmt: skip
    body = b"".join(response.streaming_content) if response.streaming else response.content
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    weights = [
        (r["redcap_event_name"], r["animal_weight_g"], r["animal_weight_g_animal_imaging_handling"])
        for r in rows
    ]
    assert weights == [("implantation_arm_2", "71.7", ""), ("imaging_1_arm_2", "", "25.0")]
