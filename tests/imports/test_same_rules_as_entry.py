"""An import judges cells, and applies calculations and branching, exactly as data entry does.

build_plan cleans the cells of most forms once per distinct cell (the fast path, fastpath.FastForm)
and validates whole records otherwise; both must give the same report and the same stored values,
and both must match what `save_record` stores for the same values.
"""

import datetime as dt
import json

import pytest

from capture.accounts.system import SYSTEM
from capture.audit.services import chain_key, verify_chain
from capture.definitions.loader import load_definitions
from capture.definitions.models import Schedule
from capture.records.models import FormRecord
from capture.records.services import save_record
from capture.studies import services as study_services

from .conftest import write_xlsx
from .test_import import problems, run

HEAD = ["Patient", "Sex", "Age", "Weight", "Smoker", "Initials", "Symptoms"]
ROWS = [
    ["A-0001", "F", 54.0, 70.5, "yes", "ABC", None],
    ["B-0001", "X", "fifty", 70.25, "maybe", "ABCD", None],  # five bad cells
    ["A-0003", "M", "n/a", "-9", True, "  ", None],  # legacy missing codes, a boolean cell, a blank
    ["A-0004", "F", 121, 70.0, "no", None, None],  # above the maximum age
    ["A-0005", "F", True, 1, 1, "XY", None],  # boolean and 0/1 cells, never remembered for each other
    ["A-0006", "F", 1, True, "Y", "X", None],
]


def _spec(*, with_checkbox: bool) -> dict:
    columns = [
        {"column": "Sex", "form": "demographics", "item": "sex", "values": {"F": "1", "M": "2"}},
        {"column": "Age", "form": "demographics", "item": "age"},
        {"column": "Weight", "form": "demographics", "item": "weight"},
        {"column": "Smoker", "form": "demographics", "item": "smoker"},
        {"column": "Initials", "form": "demographics", "item": "initials"},
    ]
    if with_checkbox:  # a checkbox column sends the form down the whole-record path
        columns.append({"column": "Symptoms", "form": "demographics", "item": "symptoms"})
    return {"subject_column": "Patient", "event": "baseline", "columns": columns}


@pytest.fixture
def five(trial, personas):
    site = trial.sites.get(code="A")
    for _ in range(4):
        study_services.enroll_subject(
            actor=personas["data_manager"], study=trial, site=site, enrollment_date=dt.date(2020, 1, 1)
        )
    return trial


def test_the_fast_path_reports_and_stores_what_the_whole_record_path_does(five, personas, tmp_path):
    dm = personas["data_manager"]
    path = write_xlsx(tmp_path / "cells.xlsx", [HEAD, *ROWS])
    fast = run(dm, five, path, _spec(with_checkbox=False))
    whole = run(dm, five, path, _spec(with_checkbox=True))
    assert fast["counts"] == whole["counts"] and problems(fast) == problems(whole)
    assert (3, "C", "fifty", "Age at enrolment: 'fifty' is not a whole number") in problems(fast)
    assert (5, "C", "121", "Age at enrolment: is above the maximum 120.0") in problems(fast)
    assert fast["counts"]["problems"] == len(problems(fast)) == 6

    good = [HEAD, ROWS[0], ROWS[2], ROWS[5]]
    path = write_xlsx(tmp_path / "good.xlsx", good)
    assert problems(run(dm, five, path, _spec(with_checkbox=False))) == []
    run(dm, five, path, _spec(with_checkbox=False), commit=True)
    stored = {r.subject.subject_id: r.data for r in FormRecord.objects.select_related("subject")}
    assert stored["A-0001"] == {"sex": "1", "age": 54, "weight": 70.5, "smoker": "1", "initials": "ABC"}
    assert stored["A-0003"] == {"sex": "2", "age": "NA", "weight": "UNK", "smoker": "1"}
    assert stored["A-0006"] == {"sex": "1", "age": 1, "weight": 1.0, "smoker": "1", "initials": "X"}
    # The whole-record path finds the very same values: nothing would change.
    again = run(dm, five, path, _spec(with_checkbox=True))
    assert again["counts"]["unchanged"] == 3 and again["counts"]["new"] == again["counts"]["changed"] == 0
    assert verify_chain(chain_key(five)) == []


def test_a_boolean_cell_is_never_taken_for_the_number_one(five, personas, tmp_path):
    # True == 1 in Python: a remembered outcome for the serial date 1 must not answer for TRUE.
    rows = [["Patient", "Visit"], ["A-0001", 1], ["B-0001", True], ["A-0003", True], ["A-0004", 1]]
    spec = {
        "subject_column": "Patient",
        "event": "baseline",
        "columns": [{"column": "Visit", "form": "lesions", "item": "visit_date"}],
    }
    report = run(personas["data_manager"], five, write_xlsx(tmp_path / "d.xlsx", rows), spec)
    assert [(p[0], p[3]) for p in problems(report)] == [
        (3, "visit_date: True is not a date"),
        (4, "visit_date: True is not a date"),
    ]
    assert report["counts"]["new"] == 2


def _logic_definitions(folder):
    """A form with a calculated BMI and a field shown only to smokers."""
    elements = [
        {"public_id": "capture.lg_weight", "name": "weight", "datatype": "decimal", "decimal_places": 1},
        {"public_id": "capture.lg_height", "name": "height", "datatype": "decimal", "decimal_places": 1},
        {"public_id": "capture.lg_bmi", "name": "bmi", "datatype": "decimal", "decimal_places": 1},
        {
            "public_id": "capture.lg_smoker",
            "name": "smoker",
            "datatype": "text",
            "permissible_values": [{"code": "yes", "meaning": "Yes"}, {"code": "no", "meaning": "No"}],
        },
        {"public_id": "capture.lg_packs", "name": "pack_years", "datatype": "integer", "max": 150},
    ]
    for e in elements:
        e.update(version="1.0", long_name=e["name"], question=e["name"].replace("_", " ").title())
    items = [
        {"element": "capture.lg_weight@1.0"},
        {"element": "capture.lg_height@1.0"},
        {"element": "capture.lg_bmi@1.0", "calculation": "round([weight] / (([height] / 100) ^ 2), 1)"},
        {"element": "capture.lg_smoker@1.0"},
        {"element": "capture.lg_packs@1.0", "branching": "[smoker] = 'yes'"},
    ]
    folder.mkdir()
    (folder / "elements.yaml").write_text(json.dumps({"elements": elements}))
    form = {
        "form": "vitals",
        "version": "1.0",
        "title": "Vitals",
        "sections": [{"title": "V", "items": items}],
    }
    (folder / "form.yaml").write_text(json.dumps(form))
    arm = {
        "name": "all",
        "title": "All",
        "events": [{"name": "baseline", "title": "Baseline", "forms": ["vitals@1.0"]}],
    }
    schedule = {"schedule": "logic", "version": "1.0", "title": "Logic", "arms": [arm]}
    (folder / "schedule.yaml").write_text(json.dumps(schedule))
    return folder


def test_an_import_applies_calculations_and_branching_as_data_entry_does(db, personas, tmp_path):
    load_definitions([_logic_definitions(tmp_path / "defs")], actor=SYSTEM)
    study = study_services.create_study(
        actor=SYSTEM, slug="logic", name="Logic", schedule=Schedule.objects.get(name="logic")
    )
    site = study_services.add_site(actor=SYSTEM, study=study, code="L", name="Logic site")
    dm = personas["data_manager"]
    study_services.grant_role(actor=SYSTEM, study=study, user=dm, role="data_manager")
    subjects = [
        study_services.enroll_subject(actor=dm, study=study, site=site, enrollment_date=dt.date(2020, 1, 1))
        for _ in range(4)
    ]
    rows = [
        # weight, height, bmi (a stale value: the server computes it), smoker, pack years
        [70, 175, 99.9, "yes", 20],
        [80, 180, None, "no", 30],  # pack years hidden for a non-smoker: dropped
        [60, 160, None, "no", "lots"],  # a bad value in a hidden field does not block the import
    ]
    path = write_xlsx(
        tmp_path / "vitals.xlsx",
        [["Subject", "Weight", "Height", "BMI", "Smoker", "Pack years"]]
        + [[s.subject_id, *r] for s, r in zip(subjects, rows, strict=False)],
    )
    spec = {
        "subject_column": "Subject",
        "event": "baseline",
        "columns": [
            {"column": "Weight", "form": "vitals", "item": "weight"},
            {"column": "Height", "form": "vitals", "item": "height"},
            {"column": "BMI", "form": "vitals", "item": "bmi"},
            {"column": "Smoker", "form": "vitals", "item": "smoker"},
            {"column": "Pack years", "form": "vitals", "item": "pack_years"},
        ],
    }
    for mapping in (spec, {**spec, "columns": [c for c in spec["columns"] if c["item"] != "bmi"]}):
        report = run(dm, study, path, mapping)
        assert problems(report) == [] and report["counts"]["new"] == 3, report["problems"]
    run(dm, study, path, spec, commit=True)
    stored = {r.subject_id: r.data for r in FormRecord.objects.filter(subject__study=study)}
    assert stored[subjects[0].pk] == {
        "weight": 70.0,
        "height": 175.0,
        "bmi": 22.9,
        "smoker": "yes",
        "pack_years": 20,
    }
    assert stored[subjects[1].pk] == {"weight": 80.0, "height": 180.0, "bmi": 24.7, "smoker": "no"}
    # The web stores the very same values for the same input.
    entered = save_record(
        actor=dm,
        subject=subjects[3],
        event_name="baseline",
        form_name="vitals",
        values={"weight": "80", "height": "180", "bmi": "1", "smoker": "no", "pack_years": "30"},
    )
    assert entered.data == stored[subjects[1].pk]
    assert verify_chain(chain_key(study)) == []
