"""A REDCap project whose whole event repeats (redcap:RepeatingInstrumentsAndEvents with an event and
no instrument; records rows with redcap_repeat_instance set and redcap_repeat_instrument blank) migrates
and comes back from the REDCap API's flat export row for row, next to a repeating instrument elsewhere."""

from __future__ import annotations

import pytest

from capture.api import tokens
from capture.migration.redcap import migrate
from capture.records.models import FormRecord
from tests.migration.test_redcap_round_trip import _rows, assert_same_records, export

DICTIONARY = (
    "field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,"
    "text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,"
    "branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,"
    "field_annotation\n"
    "record_id,enrolment,,text,Record ID,,,,,,,,,,,,,\n"
    "dob,enrolment,,text,Date of birth,,,date_ymd,,,,,,,,,,\n"
    'sex,enrolment,,radio,Sex,"0, Female | 1, Male",,,,,,,,,,,,\n'
    "sbp,vitals,,text,Systolic BP,,,integer,,,,,,,,,,\n"
    "hb,labs,,text,Haemoglobin,,,number,,,,,,,,,,\n"
)
ARMS = "arm_num,name\n1,Arm 1\n"
EVENTS = (
    "event_name,arm_num,unique_event_name,custom_event_label,event_id\n"
    "Baseline,1,baseline_arm_1,,1\nVisit,1,visit_arm_1,,2\nFollow-up,1,followup_arm_1,,3\n"
)
MAPPING = (
    "arm_num,unique_event_name,form\n1,baseline_arm_1,enrolment\n1,visit_arm_1,vitals\n1,visit_arm_1,labs\n"
    "1,followup_arm_1,labs\n"
)
# visit_arm_1 repeats whole (no form_name); labs repeats on its own at followup_arm_1.
REPEATING = "event_name,form_name,custom_form_label\nvisit_arm_1,,\nfollowup_arm_1,labs,\n"
RECORDS = (
    "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,dob,sex,enrolment_complete,"
    "sbp,vitals_complete,hb,labs_complete\n"
    "1,baseline_arm_1,,,1970-01-02,1,2,,,,\n"
    "1,visit_arm_1,,1,,,,120,2,13.5,1\n"
    "1,visit_arm_1,,2,,,,118,1,,0\n"
    "1,followup_arm_1,labs,1,,,,,,12.1,2\n"
    "2,baseline_arm_1,,,1980-05-06,0,1,,,,\n"
    "2,visit_arm_1,,3,,,,130,2,,0\n"
)


def _files(**replace) -> list[tuple[str, bytes]]:
    files = {
        "dictionary.csv": DICTIONARY,
        "arms.csv": ARMS,
        "events.csv": EVENTS,
        "mapping.csv": MAPPING,
        "repeating.csv": REPEATING,
        "records.csv": RECORDS,
        **replace,
    }
    return [(name, text.encode()) for name, text in files.items() if text is not None]


@pytest.fixture
def boss(make_user):
    return make_user("boss", is_staff=True)


def test_a_repeating_event_migrates_and_comes_back_row_for_row(client, boss):
    report = migrate(user=boss, slug="rep", files=_files())
    assert report.ok, "\n".join(report.lines())
    stored = sorted(
        FormRecord.objects.filter(subject__study=report.study, event__name="visit").values_list(
            "subject__subject_id", "form_name", "instance", "status"
        )
    )
    assert [(s, f.rsplit("_", 1)[-1], i, st) for s, f, i, st in stored] == [
        ("1", "labs", 1, 1),
        ("1", "vitals", 1, 2),
        ("1", "vitals", 2, 1),
        ("2", "vitals", 3, 2),
    ]
    assert_same_records(export(client, boss, report.study), _rows(RECORDS))


def test_repeating_events_are_listed_as_redcap_lists_them(client, boss):
    study = migrate(user=boss, slug="rep", files=_files()).study
    token = tokens.create_redcap_token(user=boss, study=study)[1]
    response = client.post(
        "/redcap/api/", {"token": token, "content": "repeatingFormsEvents", "format": "csv"}
    )
    assert _rows(response.content.decode()) == [
        {"event_name": "visit_arm_1", "form_name": "", "custom_form_label": ""},
        {"event_name": "followup_arm_1", "form_name": "labs", "custom_form_label": ""},
    ]


def test_a_repeating_event_is_inferred_from_the_records_when_no_file_says(client, boss):
    report = migrate(user=boss, slug="rep", files=_files(**{"repeating.csv": None}))
    assert report.ok, "\n".join(report.lines())
    assert any("visit_arm_1 repeat as a whole" in note for note in report.notes), report.notes
    assert_same_records(export(client, boss, report.study), _rows(RECORDS))


def test_a_row_naming_an_instrument_of_a_repeating_event_is_refused_on_its_row(boss):
    bad = RECORDS.replace("1,visit_arm_1,,2,", "1,visit_arm_1,vitals,2,")
    report = migrate(user=boss, slug="rep", files=_files(**{"records.csv": bad}), dry_run=True)
    assert [(p.row, p.column, p.value) for p in report.problems] == [
        (3, "redcap_repeat_instrument", "vitals")
    ]
    assert "repeats as a whole" in report.problems[0].message


XML = """<?xml version="1.0" encoding="UTF-8" ?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:redcap="https://projectredcap.org">
<Study OID="Project.Rep"><GlobalVariables><StudyName>Rep</StudyName>
<redcap:RepeatingInstrumentsAndEvents>
  <redcap:RepeatingEvent redcap:UniqueEventName="visit_arm_1"/>
  <redcap:RepeatingInstruments>
    <redcap:RepeatingInstrument redcap:UniqueEventName="followup_arm_1" redcap:RepeatInstrument="labs"/>
  </redcap:RepeatingInstruments>
</redcap:RepeatingInstrumentsAndEvents></GlobalVariables></Study>
<ClinicalData StudyOID="Project.Rep" MetaDataVersionOID="Metadata.Rep_1">
<SubjectData SubjectKey="1" redcap:RecordIdField="record_id">
  <StudyEventData StudyEventOID="Event.visit_arm_1" StudyEventRepeatKey="2" redcap:UniqueEventName="visit_arm_1">
    <FormData FormOID="Form.vitals" FormRepeatKey="1"><ItemGroupData ItemGroupOID="vitals.sbp">
      <ItemData ItemOID="sbp" Value="118"/></ItemGroupData></FormData>
  </StudyEventData>
  <StudyEventData StudyEventOID="Event.followup_arm_1" StudyEventRepeatKey="1" redcap:UniqueEventName="followup_arm_1">
    <FormData FormOID="Form.labs" FormRepeatKey="3"><ItemGroupData ItemGroupOID="labs.hb">
      <ItemData ItemOID="hb" Value="12.1"/></ItemGroupData></FormData>
  </StudyEventData>
</SubjectData></ClinicalData></ODM>
"""


def test_a_project_xml_names_its_repeating_events_and_their_instances():
    from capture.migration.redcap import _xml_parts

    rows, repeating, files = _xml_parts(XML.encode())
    assert repeating == {("visit_arm_1", ""), ("followup_arm_1", "labs")}
    key = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")
    assert [(tuple(r[k] for k in key), r.get("sbp"), r.get("hb")) for r in rows] == [
        (("1", "visit_arm_1", "", "2"), "118", None),
        (("1", "followup_arm_1", "labs", "3"), None, "12.1"),
    ]


def test_an_event_that_does_not_repeat_dumps_as_before_so_loaded_schedules_keep_their_hashes():
    from capture.definitions.schema import Event, dump

    plain = Event(name="visit", title="Visit", forms=["vitals@1.0"])
    assert "repeats" not in dump(plain)
    whole = Event(
        name="visit", title="Visit", forms=[{"form": "vitals@1.0", "repeating": True}], repeats=True
    )
    assert dump(whole)["repeats"] is True
    with pytest.raises(ValueError, match="repeats as a whole: mark each of its forms repeating"):
        Event(name="visit", title="Visit", forms=["vitals@1.0"], repeats=True)
