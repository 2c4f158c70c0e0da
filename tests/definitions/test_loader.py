"""Loading definition files: validation messages, idempotence, immutability of used versions."""

import shutil
from pathlib import Path

import pytest

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.definitions.loader import DefinitionError, load_definitions
from capture.definitions.models import DataElement, EventForm, FormDefinition, Schedule
from capture.records.services import save_record
from tests.conftest import BASIC, ROOT


@pytest.fixture
def defs(tmp_path) -> Path:
    target = tmp_path / "defs"
    shutil.copytree(BASIC, target)
    return target


def _problems(paths) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_definitions(paths, actor=SYSTEM)
    return caught.value.problems


def test_load_creates_elements_forms_and_schedule(db, defs):
    result = load_definitions([defs], actor=SYSTEM)
    assert "form demographics@1.0" in result.created
    sex = DataElement.objects.get(public_id="capture.test_sex", version="1.0")
    assert [(pv.code, pv.meaning) for pv in sex.permissible_values.all()] == [("1", "Female"), ("2", "Male")]
    schedule = Schedule.objects.get(name="basic")
    week8 = EventForm.objects.get(event__arm__schedule=schedule, event__name="week_8")
    assert week8.repeating and week8.form.ref == "lesions@1.0"


def test_loading_the_same_files_again_changes_nothing(db, defs):
    load_definitions([defs], actor=SYSTEM)
    events = AuditEvent.objects.count()
    again = load_definitions([defs], actor=SYSTEM)
    assert again.created == [] and again.updated == []
    assert AuditEvent.objects.count() == events, "an idempotent load must not write audit rows"


def test_unknown_datatype_is_refused_naming_file_element_and_fix(db, defs):
    path = defs / "elements.yaml"
    path.write_text(path.read_text().replace("datatype: integer", "datatype: numbr", 1))
    problems = _problems([defs])
    assert len(problems) == 1
    assert str(path) in problems[0]
    assert "'capture.test_age'" in problems[0] or "'age'" in problems[0]
    assert "numbr" not in problems[0] or "Fix:" in problems[0]
    assert "'integer'" in problems[0] and "Fix:" in problems[0]
    assert not DataElement.objects.exists(), "a failed load writes nothing"


def test_reference_to_missing_element_is_refused_and_nothing_written(db, defs):
    path = defs / "lesions.yaml"
    path.write_text(path.read_text().replace("capture.test_visit_date@1.0", "capture.test_visit_date@9.0"))
    problems = _problems([defs])
    assert any(
        str(path) in p and "capture.test_visit_date@9.0 is not defined" in p and "Fix:" in p for p in problems
    ), problems
    assert not FormDefinition.objects.exists()
    assert not DataElement.objects.exists()


def test_unknown_key_is_an_error_not_silently_dropped(db, defs):
    path = defs / "animal.yaml"
    path.write_text(
        path.read_text().replace(
            "- element: capture.test_strain@1.0", "- element: capture.test_strain@1.0\n        requird: true"
        )
    )
    problems = _problems([defs])
    assert any("requird" in p and "spelling" in p for p in problems), problems


def test_matrix_items_must_share_permissible_values(db, defs):
    path = defs / "demographics.yaml"
    path.write_text(
        path.read_text().replace("- element: capture.test_pr@1.0", "- element: capture.test_sex@1.0")
    )
    problems = _problems([defs])
    assert any("group 'receptors'" in p and "matrix" in p for p in problems), problems


def test_schedule_naming_an_undefined_form_is_refused(db, defs):
    path = defs / "schedule.yaml"
    path.write_text(path.read_text().replace("forms: [animal@1.0]", "forms: [animal@2.0]"))
    problems = _problems([defs])
    assert any("form animal@2.0 is not defined" in p and "implant" in p for p in problems), problems


def test_yaml_syntax_error_names_the_file(db, defs):
    (defs / "broken.yaml").write_text("form: x\n  version: [unclosed\n")
    problems = _problems([defs])
    assert any("broken.yaml" in p and "not valid YAML" in p for p in problems)


def test_changed_unused_form_is_updated_in_place_and_audited(db, defs):
    load_definitions([defs], actor=SYSTEM)
    path = defs / "animal.yaml"
    path.write_text(path.read_text().replace("title: Animal model", "title: Animal model (revised)"))
    result = load_definitions([defs], actor=SYSTEM)
    assert result.updated == ["form animal@1.0"]
    assert FormDefinition.objects.get(name="animal").title == "Animal model (revised)"
    assert AuditEvent.objects.filter(action="definitions.form.update", object_id="animal@1.0").exists()


def test_changed_content_under_a_used_form_version_is_refused(subjects, personas, tmp_path):
    save_record(
        actor=personas["admin"],
        subject=subjects["model"],
        event_name="implant",
        form_name="animal",
        values={"strain": "NSG"},
    )
    defs = tmp_path / "changed"
    shutil.copytree(ROOT / "fixtures" / "definitions" / "basic", defs)
    path = defs / "animal.yaml"
    path.write_text(path.read_text().replace("title: Animal model", "title: Renamed"))
    problems = _problems([defs])
    assert any(
        "form animal@1.0 differs" in p and "1 record(s)" in p and 'version: "1.1"' in p for p in problems
    )
    assert FormDefinition.objects.get(name="animal").title == "Animal model"


def test_changed_element_used_by_records_is_refused(subjects, personas, tmp_path):
    save_record(
        actor=personas["admin"],
        subject=subjects["model"],
        event_name="implant",
        form_name="animal",
        values={"strain": "NSG"},
    )
    defs = tmp_path / "changed"
    shutil.copytree(BASIC, defs)
    path = defs / "elements.yaml"
    path.write_text(path.read_text().replace("question: Strain", "question: Mouse strain"))
    problems = _problems([defs])
    assert any("element capture.test_strain@1.0 differs" in p and "animal@1.0" in p for p in problems), (
        problems
    )


def test_new_version_loads_beside_the_used_one_and_records_keep_theirs(subjects, personas, tmp_path):
    record = save_record(
        actor=personas["admin"],
        subject=subjects["model"],
        event_name="implant",
        form_name="animal",
        values={"strain": "NSG"},
    )
    defs = tmp_path / "v2"
    shutil.copytree(BASIC, defs)
    (defs / "animal.yaml").write_text(
        (defs / "animal.yaml")
        .read_text()
        .replace('version: "1.0"', 'version: "1.1"')
        .replace("title: Animal model", "title: Animal model v1.1")
    )
    load_definitions([defs], actor=SYSTEM)
    assert set(FormDefinition.objects.filter(name="animal").values_list("version", flat=True)) == {
        "1.0",
        "1.1",
    }
    record.refresh_from_db()
    assert record.form.version == "1.0"


def test_shipped_definitions_load_and_reload_idempotently(db):
    first = load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    assert first.created, "crf_definitions/ should define something"
    assert FormDefinition.objects.count() >= 12
    assert Schedule.objects.filter(name="qin_coclinical").exists()
    again = load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    assert again.created == [] and again.updated == []
