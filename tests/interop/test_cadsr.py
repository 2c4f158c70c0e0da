"""caDSR CDE XML and Form Builder XML in: real ids, permissible values with concept codes, forms."""

from __future__ import annotations

import pytest

from capture.accounts.system import SYSTEM
from capture.definitions import services
from capture.definitions.converters import cadsr
from capture.definitions.loader import DefinitionError, load_definitions
from capture.definitions.models import DataElement, FormDefinition
from capture.definitions.schema import iter_items

from .conftest import DATA, OWN, ROOT, shared

CADSR = DATA / "cadsr"


def _cde_files() -> list[str]:
    return sorted(p.name for p in CADSR.glob("*.xml")) if CADSR.exists() else ["(none)"]


@pytest.mark.parametrize("name", _cde_files())
def test_every_shared_cde_export_loads_with_its_values_and_concepts(db, name):
    path = shared(CADSR / name)
    conversion = cadsr.read_cde(path.read_bytes(), source=name)
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    (element,) = conversion.elements
    assert element.public_id == name.removeprefix("cde-sample-").removesuffix(".xml")
    text = path.read_text()
    valid_values = {v.split("</VALIDVALUE>")[0] for v in text.split("<VALIDVALUE>")[1:]}
    assert {pv.code for pv in element.permissible_values} == valid_values
    services.import_definitions(actor=SYSTEM, conversion=conversion)
    row = DataElement.objects.get(public_id=element.public_id, version=element.version)
    assert row.permissible_values.count() == len(valid_values)
    assert name in row.source


def test_a_cde_keeps_question_datatype_length_concepts_and_value_meanings(db):
    conversion = cadsr.read_cde(
        shared(CADSR / "cde-sample-2001831.xml").read_bytes(), source="cde-sample-2001831.xml"
    )
    (element,) = conversion.elements
    assert (element.public_id, element.version) == ("2001831", "3")
    assert element.long_name == "Fracture Bone Not Report Assessment Site"
    assert element.question == "Fracture Not Previously Reported?"
    assert (element.datatype, element.max_length) == ("text", 35)
    assert element.concepts == ["C3046:C12366", "C25594:C25375:C20989"]
    values = {pv.code: pv for pv in element.permissible_values}
    assert values["Ulna"].concept == "C12809"
    assert (values["Spine"].meaning, values["Spine"].concept) == ("Spine, Whole", "C25326:C12464")
    assert values["Radius"].concept is None, "no concept is invented where the source gives none"
    assert any("'Other' is listed more than once" in p.message for p in conversion.problems)


def test_java_and_classic_datatypes_and_display_formats_map(db):
    def element(name):
        return cadsr.read_cde(shared(CADSR / name).read_bytes(), source=name).elements[0]

    assert (element("cde-sample-2001826.xml").datatype, element("cde-sample-2001826.xml").display_format) == (
        "date",
        "mdy",
    )
    assert element("cde-sample-2513777.xml").datatype == "decimal"
    assert element("cde-sample-2513896.xml").datatype == "integer"
    assert element("cde-sample-2513819.xml").datatype == "datetime"
    assert element("cde-sample-2608127.xml").datatype == "text"


def test_a_form_builder_export_becomes_a_form_on_real_cde_ids(db):
    path = OWN / "cadsr" / "formcart_recurrence.xml"
    conversion = services.convert("cadsr", path.read_bytes(), source=path.name)
    assert conversion.kind == "formcart"
    assert conversion.errors == [], [str(p) for p in conversion.errors]
    (form,) = conversion.forms
    assert (form.form, form.title) == ("cadsr_9000001", "Recurrence and Adverse Event Follow-up")
    assert [s.title for s in form.sections] == ["Recurrence", "Adverse events"]
    date_item, site_item = form.sections[0].items
    assert date_item.element == "2001826@3" and date_item.required
    assert site_item.widget == "checkbox" and site_item.field_note == "Tick every site."
    group = form.sections[1].items[0]
    assert group.repeating and group.max_repeats == 10
    site = conversion.elements_by_ref()["2001831@3"]
    assert [(p.code, p.concept) for p in site.permissible_values] == [
        ("Ulna", "C12809"),
        ("Pelvis", "C12767"),
        ("Spine", "C25326:C12464"),
    ]
    assert any("without a data element" in p.message for p in conversion.warnings)
    services.import_definitions(actor=SYSTEM, conversion=conversion)
    assert FormDefinition.objects.get(name="cadsr_9000001").elements.count() == 3


def test_loading_the_same_cde_twice_changes_nothing_whatever_the_file_is_called(db):
    data = shared(CADSR / "cde-sample-2002061.xml").read_bytes()
    services.import_definitions(actor=SYSTEM, conversion=cadsr.read_cde(data, source="a.xml"))
    again, settled = services.import_definitions(
        actor=SYSTEM, conversion=cadsr.read_cde(data, source="b.xml")
    )
    assert again.created == [] and again.updated == []
    assert settled.elements[0].version == "3"
    assert list(DataElement.objects.filter(public_id="2002061").values_list("version", flat=True)) == ["3"]


def test_a_changed_definition_of_a_loaded_cde_version_is_refused_not_given_a_made_up_version(db):
    data = shared(CADSR / "cde-sample-2002061.xml").read_bytes()
    services.import_definitions(actor=SYSTEM, conversion=cadsr.read_cde(data, source="a.xml"))
    changed = data.replace(b"<MaximumLength>3</MaximumLength>", b"<MaximumLength>4</MaximumLength>").replace(
        b"<Datatype>NUMBER</Datatype>", b"<Datatype>CHARACTER</Datatype>"
    )
    with pytest.raises(DefinitionError) as refused:
        services.import_definitions(actor=SYSTEM, conversion=cadsr.read_cde(changed, source="a.xml"))
    (problem,) = refused.value.problems
    assert "caDSR CDE 2002061 v3 is loaded already with a different definition" in problem
    assert list(DataElement.objects.filter(public_id="2002061").values_list("version", flat=True)) == ["3"]


def test_the_real_entrez_gene_cde_does_not_become_a_version_1_1_of_the_shipped_one(db):
    # The shipped tissue elements hold caDSR 2544997 as version 1.0 (caDSR's VERSION 1), adapted.
    load_definitions([ROOT / "crf_definitions" / "elements" / "tissue.yaml"], actor=SYSTEM)
    data = shared(CADSR / "cde-sample-2544997.xml").read_bytes()
    with pytest.raises(DefinitionError) as refused:
        services.import_definitions(
            actor=SYSTEM, conversion=cadsr.read_cde(data, source="cde-sample-2544997.xml")
        )
    assert "caDSR CDE 2544997 v1 is loaded already with a different definition" in refused.value.problems[0]
    assert list(DataElement.objects.filter(public_id="2544997").values_list("version", flat=True)) == ["1.0"]


def test_an_older_cde_version_keeps_its_own_number_when_a_newer_one_is_loaded(db):
    data = shared(CADSR / "cde-sample-2001826.xml").read_bytes()
    newer = data.replace(b"<VERSION>3</VERSION>", b"<VERSION>4.0</VERSION>")
    assert newer != data
    services.import_definitions(actor=SYSTEM, conversion=cadsr.read_cde(newer, source="v4.xml"))
    _, settled = services.import_definitions(
        actor=SYSTEM, conversion=cadsr.read_cde(data, source="cde-sample-2001826.xml")
    )
    assert settled.elements[0].version == "3"
    versions = set(DataElement.objects.filter(public_id="2001826").values_list("version", flat=True))
    assert versions == {"3", "4.0"}


def test_a_form_whose_copy_of_a_loaded_cde_differs_gets_a_local_variant_not_a_new_cde_version(db):
    name = "cde-sample-2001831.xml"
    cde = cadsr.read_cde(shared(CADSR / name).read_bytes(), source=name)
    services.import_definitions(actor=SYSTEM, conversion=cde)
    path = OWN / "cadsr" / "formcart_recurrence.xml"
    form = services.convert("cadsr", path.read_bytes(), source=path.name)
    _, settled = services.import_definitions(actor=SYSTEM, conversion=form)
    assert list(DataElement.objects.filter(public_id="2001831").values_list("version", flat=True)) == ["3"]
    assert DataElement.objects.get(public_id="2001831").permissible_values.count() == 19
    variant = DataElement.objects.get(public_id="capture.cadsr_2001831_v3")
    assert variant.version == "1.0"
    assert variant.source.startswith("local variant of caDSR CDE 2001831 v3")
    assert variant.permissible_values.count() == 3  # the form's narrowed list
    refs = {item.element for _, _, item in iter_items(settled.forms[0])}
    assert "capture.cadsr_2001831_v3@1.0" in refs
    assert "2001826@3" in refs  # not loaded before: caDSR's own id and version
    again, _ = services.import_definitions(actor=SYSTEM, conversion=form)
    assert again.created == [] and again.updated == []


def test_a_file_that_is_not_a_cde_export_says_what_to_do(db):
    conversion = cadsr.read_cde(b"<Something/>", source="x.xml")
    assert conversion.errors and "CDE Browser" in conversion.errors[0].message
