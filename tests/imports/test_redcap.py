"""REDCap records exports: repeat instruments, checkbox columns, <form>_complete, unique event names."""

from capture.imports import services
from capture.imports.mapping import Mapping
from capture.imports.readers import read_table
from capture.records.models import FormRecord

from .conftest import REDCAP, need_shared


def redcap_import(user, study, path, commit):
    table = read_table(path)
    spec = services.redcap_spec(services.StudyForms.of(study), table.headers)
    return services.run_import(
        actor=user, study=study, path=path, mapping=Mapping.from_spec(spec), commit=commit
    )


def test_the_redcap_layout_is_recognised_from_the_headers(redcap_study):
    table = read_table(need_shared(REDCAP / "redcapr_repeating_data.csv"))
    spec = services.suggest_mapping(redcap_study, table)
    assert spec["subject_column"] == "record_id"
    assert (
        spec["instance_column"] == "redcap_repeat_instance"
        and spec["repeat_form_column"] == "redcap_repeat_instrument"
    )
    assert spec["status_columns"] == {"demographics": "demographics_complete", "bp": "bp_complete"}
    assert {c["column"]: (c["form"], c["item"]) for c in spec["columns"]}["bp_systolic"] == (
        "bp",
        "bp_systolic",
    )


def test_a_redcap_export_with_repeating_instruments_imports_and_reimports_unchanged(redcap_study, personas):
    path = need_shared(REDCAP / "redcapr_repeating_data.csv")
    dm = personas["data_manager"]
    dry = redcap_import(dm, redcap_study, path, commit=False)
    assert dry["counts"] == {"rows": 6, "new": 6, "changed": 0, "unchanged": 0, "problems": 0, "warnings": 0}
    assert FormRecord.objects.count() == 0
    redcap_import(dm, redcap_study, path, commit=True)
    demo = FormRecord.objects.get(subject__subject_id="1", form_name="demographics")
    assert demo.status == 2 and demo.instance == 1
    assert demo.data == {
        "date_enrolled": "2019-10-14",
        "first_name": "aaa",
        "dob": "2010-10-14",
        "age": 8.9,
        "ethnicity": "1",
        "race": "4",
        "sex": "0",
    }
    readings = FormRecord.objects.filter(subject__subject_id="1", form_name="bp").order_by("instance")
    assert [(r.instance, r.data["bp_systolic"], r.status) for r in readings] == [
        (1, 110, 2),
        (2, 111, 2),
        (3, 112, 2),
    ]
    again = redcap_import(dm, redcap_study, path, commit=True)
    assert again["counts"]["unchanged"] == 6 and again["counts"]["new"] == 0


def test_checkbox_columns_and_unique_event_names_map_to_codes_and_events(redcap_study, personas, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,date_bp,bp_systolic,"
        "bp_diastolic,symptoms___1,symptoms___2,symptoms___3,bp_complete\r\n"
        "1,enrollment_arm_1,bp,1,2020-01-02,120,80,1,0,1,1\r\n"
        "2,enrollment_arm_1,bp,1,2020-01-03,130,85,0,0,0,0\r\n"
        "2,followup_arm_1,bp,1,2020-02-03,130,85,0,0,2,0\r\n"
    )
    report = redcap_import(personas["data_manager"], redcap_study, path, commit=False)
    reasons = [(p["row"], p["column"], p["reason"]) for p in report["problems"]]
    assert (
        4,
        "B",
        "2 (arm patients) has no event 'followup'; its events: enrollment. Map the event label to one of them.",
    ) in reasons
    # The row fills no record, but its other bad cell is still reported (issue 13: every bad cell).
    assert (4, "J", "symptoms: '2' is not 1 or 0 (ticked or not)") in reasons and len(reasons) == 2
    path.write_text("\r\n".join(path.read_text().splitlines()[:3]) + "\r\n")
    redcap_import(personas["data_manager"], redcap_study, path, commit=True)
    first = FormRecord.objects.get(subject__subject_id="1", form_name="bp")
    assert first.data["symptoms"] == ["1", "3"] and first.status == 1
    # Nothing ticked is stored as no value, as data entry stores it.
    assert "symptoms" not in FormRecord.objects.get(subject__subject_id="2", form_name="bp").data
