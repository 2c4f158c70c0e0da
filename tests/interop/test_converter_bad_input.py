"""Malformed files give the converters' problem report naming where, never an exception.

Each test feeds a minimal bad file, written here, through `services.convert` (what the web preview
and the import command call) and expects an error at the place that is wrong.
"""

from __future__ import annotations

from capture.definitions import services

HEADER = (
    "Variable / Field Name,Form Name,Section Header,Field Type,Field Label,"
    '"Choices, Calculations, OR Slider Labels",Field Note,Text Validation Type OR Show Slider Number,'
    "Text Validation Min,Text Validation Max,Identifier?,Branching Logic (Show field only if...),"
    "Required Field?,Custom Alignment,Question Number (surveys only),Matrix Group Name,Matrix Ranking?,"
    "Field Annotation\n"
)


def _odm(metadata: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileOID="F" FileType="Snapshot">\n'
        '<Study OID="S"><GlobalVariables><StudyName>S</StudyName><StudyDescription/><ProtocolName>S'
        '</ProtocolName></GlobalVariables>\n<MetaDataVersion OID="M" Name="M">\n'
        + metadata
        + "\n</MetaDataVersion></Study></ODM>\n"
    )


FORM = (
    '<FormDef OID="F.demo" Name="Demo" Repeating="No">{form_alias}'
    '<ItemGroupRef ItemGroupOID="IG.demo" Mandatory="No"/></FormDef>\n'
    '<ItemGroupDef OID="IG.demo" Name="Demo" Repeating="No"><ItemRef ItemOID="I.age" Mandatory="No"/></ItemGroupDef>\n'
    '<ItemDef OID="I.age" Name="age" DataType="integer">{item_alias}</ItemDef>\n'
)


def _cdisc(form_alias: str = "", item_alias: str = "", events: str = "") -> str:
    return _odm(FORM.format(form_alias=form_alias, item_alias=item_alias) + events)


def _problems(conversion) -> list[str]:
    return [str(p) for p in conversion.errors]


def test_a_radio_row_with_a_bad_matrix_group_under_a_section_header_is_reported_at_its_cell():
    data = HEADER + 'colour,demo,About you,radio,Colour,"1, Red | 2, Blue",,,,,,,,,,Bad M,,\n'
    conversion = services.convert("redcap", data, source="d.csv", project="proj")
    assert conversion.errors, "the bad matrix group name is an error"
    (problem,) = conversion.errors
    assert (problem.line, problem.column) == (2, "P (Matrix Group Name)")
    assert "'Bad M'" in problem.message


def test_an_odm_capture_alias_on_an_item_without_a_version_is_reported_at_the_itemdef():
    data = _cdisc(item_alias='<Alias Context="Capture" Name="capture.odm.proj.age"/>')
    conversion = services.convert("odm", data, source="m.xml", project="proj")
    problem = next(p for p in conversion.errors if p.where == "ItemDef 'I.age'")
    assert problem.line == 7
    assert "capture.odm.proj.age" in problem.message


def test_an_odm_capture_alias_on_a_form_without_a_version_is_reported_at_the_formdef():
    data = _cdisc(form_alias='<Alias Context="Capture" Name="proj_demo"/>')
    conversion = services.convert("odm", data, source="m.xml", project="proj")
    problem = next(p for p in conversion.errors if "FormDef 'F.demo'" in str(p))
    assert problem.line == 5
    assert "proj_demo" in problem.message


def test_an_odm_item_naming_an_unknown_widget_is_reported_at_its_itemref():
    data = _cdisc(item_alias='<Alias Context="Capture:widget" Name="hologram"/>')
    conversion = services.convert("odm", data, source="m.xml", project="proj")
    problem = next(p for p in conversion.errors if "hologram" in p.message)
    assert problem.line == 6  # the ItemRef in the ItemGroupDef


def test_an_odm_event_whose_arm_alias_has_no_name_is_reported_at_the_studyeventdef():
    events = (
        '<StudyEventDef OID="SE.baseline" Name="Baseline" Repeating="No" Type="Scheduled">'
        '<FormRef FormOID="F.demo" Mandatory="No"/><Alias Context="Capture:arm"/></StudyEventDef>'
    )
    conversion = services.convert("odm", _cdisc(events=events), source="m.xml", project="proj")
    problem = next(p for p in conversion.errors if "Capture:arm" in p.message)
    assert problem.line == 8


REDCAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:redcap="https://projectredcap.org" ODMVersion="1.3.1" FileOID="F" FileType="Snapshot">
<Study OID="S"><GlobalVariables><StudyName>S</StudyName></GlobalVariables>
<MetaDataVersion OID="M" Name="M" redcap:RecordIdField="record_id">
<Protocol><StudyEventRef StudyEventOID="Event.baseline_arm_1" OrderNumber="1" Mandatory="No"/></Protocol>
<StudyEventDef OID="Event.baseline_arm_1" Name="Baseline" Type="Common" Repeating="No" redcap:EventName="Baseline" redcap:UniqueEventName="baseline_arm_1" redcap:ArmNum="1" redcap:ArmName="Arm 1">
<FormRef FormOID="Form.demo" OrderNumber="1" Mandatory="No" redcap:FormName="demo"/>
<FormRef FormOID="Form.ghost" OrderNumber="2" Mandatory="No" redcap:FormName="ghost"/>
</StudyEventDef>
<FormDef OID="Form.demo" Name="Demo" Repeating="No" redcap:FormName="demo">
<ItemGroupRef ItemGroupOID="demo.record_id" Mandatory="No"/></FormDef>
<ItemGroupDef OID="demo.record_id" Name="Demo" Repeating="No"><ItemRef ItemOID="record_id" Mandatory="No" redcap:Variable="record_id"/></ItemGroupDef>
<ItemDef OID="record_id" Name="record_id" DataType="text" Length="999" redcap:Variable="record_id" redcap:FieldType="text"><Question><TranslatedText>Record ID</TranslatedText></Question></ItemDef>
</MetaDataVersion></Study></ODM>
"""


def test_a_redcap_event_naming_an_instrument_the_project_lacks_is_reported_at_the_event():
    conversion = services.convert("odm", REDCAP_XML, source="p.xml", project="proj")
    problem = next(p for p in conversion.errors if "'ghost'" in p.message)
    assert problem.line == 8  # the event's FormRef to Form.ghost
    assert "Event.baseline_arm_1" in problem.message
