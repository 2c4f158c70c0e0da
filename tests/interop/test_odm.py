"""CDISC ODM 1.3.2 out (schema-valid) and in; REDCap project XML in."""

from __future__ import annotations

import pytest
from lxml import etree

from capture.accounts.system import SYSTEM
from capture.definitions import services
from capture.definitions.converters import cadsr, odm, redcap
from capture.definitions.loader import DefinitionError
from capture.definitions.models import Schedule
from capture.studies.models import Study

from .conftest import DATA, OWN, REDCAP, shared

ODM = DATA / "odm"
NS = {"odm": odm.ODM_NS}


def test_the_redcap_project_xml_imports_as_the_same_study_as_its_dictionary(db, make_user):
    conversion = odm.read_odm(
        shared(ODM / "redcapr_longitudinal_project.odm.xml").read_bytes(),
        project="longi",
        source="project.xml",
    )
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    from .conftest import longitudinal_files

    dictionary = redcap.read_dictionary(
        shared(REDCAP / "redcapr_longitudinal_dictionary.csv").read_bytes(),
        project="longi",
        **longitudinal_files(),
    )
    assert [e.model_dump() for e in conversion.elements] == [e.model_dump() for e in dictionary.elements]
    assert [f.model_dump() for f in conversion.forms] == [f.model_dump() for f in dictionary.forms]

    def plan(schedule):  # the events CSV has no day offsets; the project XML has them
        return [(a.name, a.title, [(e.name, e.title, e.forms) for e in a.events]) for a in schedule.arms]

    assert plan(conversion.schedule) == plan(dictionary.schedule)
    event = conversion.schedule.arms[1].events[3]
    assert (event.name, event.day, event.window_before, event.window_after) == ("first_visit", 10, 2, 2)
    study, _ = services.create_study_from_conversion(
        actor=make_user("boss", is_staff=True), conversion=conversion, slug="longi", name="Longitudinal"
    )
    assert study.schedule.arms.count() == 2


def test_a_study_exports_odm_that_validates_against_the_odmlib_schema(db, study):
    data, problems = services.export_odm(actor=SYSTEM, study=study)
    assert problems == []
    assert odm.validate_odm(data) == []
    root = etree.fromstring(data)
    assert root.get("ODMVersion") == "1.3.2"
    names = {n.get("Name") for n in root.iterfind(".//odm:ItemDef", NS)}
    assert {"sex", "age", "er_status", "lesion_site"} <= names
    assert root.find(".//odm:ItemGroupDef[@Repeating='Yes']", NS) is not None, "the repeating group repeats"
    sex = root.find(".//odm:CodeList[@Name='sex']", NS)
    assert [i.get("CodedValue") for i in sex] == ["1", "2"]


def test_concept_codes_and_cadsr_ids_travel_as_alias_and_come_back(db, make_user):
    path = OWN / "cadsr" / "formcart_recurrence.xml"
    form_conversion = cadsr.read_formcart(path.read_bytes(), source=path.name)
    services.import_definitions(actor=SYSTEM, conversion=form_conversion)
    data, problems = odm.write_odm(
        form_conversion.forms,
        form_conversion.elements_by_ref(),
        None,
        study_oid="Study.recur",
        study_name="Recurrence",
        created="2026-01-01T00:00:00",
    )
    assert problems == []
    root = etree.fromstring(data)
    assert root.find(".//odm:ItemDef/odm:Alias[@Context='caDSR'][@Name='2001831v3']", NS) is not None
    assert (
        root.find(".//odm:CodeListItem[@CodedValue='Ulna']/odm:Alias[@Context='nci:ExtCodeID']", NS).get(
            "Name"
        )
        == "C12809"
    )
    back = odm.read_odm(data, project="recur", source="back.xml")
    assert back.errors == [], [str(p) for p in back.errors]
    site = back.elements_by_ref()["2001831@3"]
    assert [(p.code, p.concept) for p in site.permissible_values] == [
        ("Ulna", "C12809"),
        ("Pelvis", "C12767"),
        ("Spine", "C25326:C12464"),
    ]
    assert site.concepts == form_conversion.elements_by_ref()["2001831@3"].concepts


def test_odm_export_and_import_round_trip_keeps_branching_calculations_and_schedule(db, make_user):
    path = shared(REDCAP / "redcapr_longitudinal_dictionary.csv")
    from .conftest import longitudinal_files

    conversion = redcap.read_dictionary(path.read_bytes(), project="lo", **longitudinal_files())
    study, _ = services.create_study_from_conversion(
        actor=make_user("boss", is_staff=True), conversion=conversion, slug="lo", name="Lo"
    )
    data, problems = services.export_odm(actor=SYSTEM, study=study)
    assert problems == [], [str(p) for p in problems]
    back = odm.read_odm(data, project="lo", source="lo.xml")
    assert back.errors == [], [str(p) for p in back.errors]
    items = {i.element: i for f in back.forms for s in f.sections for i in s.items if hasattr(i, "element")}
    assert items["capture.redcap.lo.num_children@1.0"].branching == '[sex] = "0" and [given_birth] = "1"'
    assert items["capture.redcap.lo.bmi@1.0"].calculation == "round(([weight]*10000)/(([height])^(2)),1)"
    assert [(a.name, [e.name for e in a.events]) for a in back.schedule.arms] == [
        (a.name, [e.name for e in a.events]) for a in conversion.schedule.arms
    ]
    assert [f.form for f in back.forms] == [f.form for f in conversion.forms]


@pytest.mark.parametrize("name", ["odmlib_cdash-odm-test.xml", "odmlib_odm-data-snapshot.xml"])
def test_cdisc_odm_132_metadata_imports_with_aliases_as_names(db, name):
    conversion = odm.read_odm(shared(ODM / name).read_bytes(), project="cdash", source=name)
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    assert conversion.forms and conversion.schedule is not None
    services.import_definitions(actor=SYSTEM, conversion=conversion)
    assert Schedule.objects.filter(name="cdash").exists()


def test_cdash_items_keep_codelists_and_partial_dates_are_reported(db):
    conversion = odm.read_odm(
        shared(ODM / "odmlib_cdash-odm-test.xml").read_bytes(), project="cdash", source="c.xml"
    )
    severity = {e.name: e for e in conversion.elements}["aesev"]
    assert [p.code for p in severity.permissible_values] == ["MILD", "MODERATE", "SEVERE"]
    partial = [p for p in conversion.warnings if "partialDatetime" in p.message]
    assert partial and all(p.line for p in partial)


def test_a_file_that_is_not_odm_is_refused_with_a_fix(db):
    conversion = odm.read_odm(b"<root/>", project="x", source="x.xml")
    assert conversion.errors and "Fix:" in conversion.errors[0].message
    assert not Study.objects.exists()


def test_a_schema_invalid_odm_file_is_refused_with_the_lines_of_its_errors(db):
    valid = shared(ODM / "odmlib_cdash-odm-test.xml").read_bytes()
    # Line 30 holds the Demographics FormDef; ODM allows Repeating="Yes" or "No" only, and a
    # FormDef needs a Name.
    invalid = valid.replace(
        b'<FormDef Name="Demographics" OID="ODM.F.DM" Repeating="No">',
        b'<FormDef OID="ODM.F.DM" Repeating="Sometimes">',
    )
    assert invalid != valid
    conversion = odm.read_odm(invalid, project="cdash", source="broken.xml")
    schema_errors = [p for p in conversion.errors if "ODM 1.3.2 schema" in p.message]
    assert {p.line for p in schema_errors} == {30}
    assert any("Sometimes" in p.message for p in schema_errors)
    assert any("'Name' is required" in p.message for p in schema_errors)
    with pytest.raises(DefinitionError):
        services.import_definitions(actor=SYSTEM, conversion=conversion)
    assert not Schedule.objects.filter(name="cdash").exists()


def test_schema_valid_odm_files_bring_no_schema_problems(db):
    for name in ("odmlib_cdash-odm-test.xml", "odmlib_odm-data-snapshot.xml"):
        conversion = odm.read_odm(shared(ODM / name).read_bytes(), project="cdash", source=name)
        assert not [p for p in conversion.problems if "schema" in p.message], name


def test_redcap_project_xml_loads_with_its_extensions_and_its_own_schema_slips_as_warnings(db):
    data = shared(ODM / "redcapr_longitudinal_project.odm.xml").read_bytes()
    conversion = odm.read_odm(data, project="longi", source="project.xml")
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    slips = [p for p in conversion.warnings if "ODM 1.3.2 schema" in p.message]
    # REDCap writes CodeList DataType="boolean" (lines 812...) and empty ItemGroupDef Names (179, 199);
    # nothing about its redcap: attributes and elements, which are its documented extensions.
    assert [p.line for p in slips][:3] == [179, 199, 812]
    assert len([p for p in slips if p.line]) == 10
    assert "18 more ODM 1.3.2 schema error(s)" in slips[-1].message  # 28 in all
    assert not any("projectredcap" in p.message for p in slips)
    assert "Element 'ItemGroupDef', attribute 'Name'" in slips[0].message
