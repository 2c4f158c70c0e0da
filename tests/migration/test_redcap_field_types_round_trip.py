"""A REDCap project of field types the shared projects do not have (date_mdy, datetime, time, email,
descriptive, yes/no and true/false, string and negative codes, slider, calc, notes with line breaks,
commas and quotes, a matrix group, a repeating instrument with comma decimals and a checkbox,
non-numeric record ids) comes back from the REDCap API cell for cell after import_redcap_project."""

import pytest

from capture.migration.redcap import migrate
from tests.migration.test_redcap_round_trip import _rows, assert_same_records, export

H = (
    "field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,"
    "text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,"
    "branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,field_annotation\n"
)
D = H + (
    "study_id,intake,,text,Study ID,,,,,,,,,,,,,\n"
    "dob,intake,Demographics,text,Date of birth,,,date_mdy,,,y,,,,,,,\n"
    "visit_dt,intake,,text,Visit,,,datetime_ymd,,,,,,,,,,\n"
    "wake,intake,,text,Wake time,,,time,,,,,,,,,,\n"
    "mail,intake,,text,Email,,,email,,,y,,,,,,,\n"
    "descr,intake,,descriptive,Some text here,,,,,,,,,,,,,\n"
    "smoker,intake,,yesno,Smoker?,,,,,,,,,,,,,\n"
    "agree,intake,,truefalse,Agree?,,,,,,,,,,,,,\n"
    'color,intake,,radio,Colour,"r, Red | g, Green | -1, Unknown",,,,,,,,,,,,\n'
    "level,intake,,dropdown,Level,\"0, None | 1, Low | 2, High\",,,,,,[smoker] = '1',,,,,,\n"
    'pain,intake,,slider,Pain,"Low | Mid | High",,,,,,,,,,,,\n'
    "weight,intake,,text,Weight,,,number,,,,,,,,,,\n"
    "height,intake,,text,Height,,,number,,,,,,,,,,\n"
    'bmi,intake,,calc,BMI,"round([weight]/(([height]/100)^2),1)",,,,,,,,,,,,\n'
    "notes,intake,,notes,Notes,,,,,,,,,,,,,\n"
    'm1,intake,,radio,Q1,"1, Yes | 0, No",,,,,,,,,,mx,,\n'
    'm2,intake,,radio,Q2,"1, Yes | 0, No",,,,,,,,,,mx,,\n'
    "med_name,meds,,text,Medication,,,,,,,,,,,,,\n"
    "med_dose,meds,,text,Dose,,,number_comma_decimal,,,,,,,,,,\n"
    'med_route,meds,,checkbox,Route,"PO, Oral | IV, Intravenous",,,,,,,,,,,,\n'
)
DATA = (
    "study_id,redcap_repeat_instrument,redcap_repeat_instance,dob,visit_dt,wake,mail,smoker,agree,color,level,pain,weight,height,bmi,notes,m1,m2,intake_complete,med_name,med_dose,med_route___po,med_route___iv,meds_complete\n"
    'A01,,,1970-02-28,2024-01-02 13:45,08:30,a@b.org,1,0,-1,2,37,70,175,22.9,"line one\nline, two ""quoted""",1,0,2,,,,,\n'
    'A01,meds,1,,,,,,,,,,,,,,,,,Aspirin,"1,5",1,0,2\n'
    "A01,meds,3,,,,,,,,,,,,,,,,,Ibuprofen,400,0,1,1\n"
    "A02,,,,,,,0,1,r,,,,,,,,,0,,,,,\n"
    "B01,,,1980-12-01,,,,,,g,,100,80.5,180,24.8,,,,1,,,,,\n"
    "B01,meds,1,,,,,,,,,,,,,,,,,X,,0,0,0\n"
)


@pytest.fixture
def boss(make_user):
    return make_user("boss", is_staff=True)


def test_a_project_of_every_field_type_comes_back_cell_for_cell(client, boss):
    report = migrate(user=boss, slug="exotic", files=[("dict.csv", D.encode()), ("data.csv", DATA.encode())])
    assert report.ok, "\n".join(report.lines())
    got = export(client, boss, report.study)
    assert_same_records(got, _rows(DATA))
