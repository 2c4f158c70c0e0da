"""CDISC ODM 1.3.2 metadata to and from Capture definitions; REDCap project XML in.

Writing (reusable by the exports app):

    metadata_version_element(forms, elements, schedule, oid=..., name=...) -> lxml <MetaDataVersion>
    write_odm(forms, elements, schedule, study_oid=..., study_name=...) -> (bytes, problems)
    validate_odm(data) -> list of schema errors (empty: valid against ODM 1.3.2 shipped in odmlib)

`forms`, `elements` and `schedule` are schema models (capture.definitions.schema); for a loaded study
use `capture.definitions.services.study_definitions(study)`. OIDs are stable and readable:
`SE.<arm>.<event>`, `F.<form>.<version>`, `IG.<form>.<version>.<n>`, `I.<public_id>.<version>`,
`CL.<public_id>.<version>`, `CD.<form>.<item>` (branching), `MT.<form>.<item>` (calculation). A clinical-
data writer puts ItemData under those OIDs.

What ODM has no element for is written as Alias: `Context="nci:ExtCodeID"` for concept codes (on
ItemDef for the element's concepts, on CodeListItem for a value's), `Context="caDSR"` for a registered
public id (`<id>v<version>`), `Context="Capture"` for the element/form ref, `Context="Capture:unit"`,
`Context="Capture:widget"`. Branching is a ConditionDef whose FormalExpression (Context "REDCap") is
`not (<expression>)`, because ODM's CollectionExceptionCondition says when an item is *not* collected.

Reading: an ODM file's first MetaDataVersion becomes elements (local ids `capture.odm.<project>.<name>`
unless a caDSR alias names a registered id), forms (one section per ItemGroupDef, a repeating group
stays repeating), and, when it has StudyEventDefs, a one-arm schedule. A REDCap project XML (the
`redcap:` attributes) is read field by field into dictionary rows and converted exactly as a
dictionary is, events and arms included.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lxml import etree
from pydantic import ValidationError

from ..schema import (
    LOCAL_PREFIX,
    NAME_RE,
    Arm,
    DataElement,
    Event,
    EventForm,
    FormFile,
    Item,
    ItemGroup,
    ScheduleFile,
    Section,
)
from . import Conversion, Problem
from . import redcap as rc
from .redcap.schedule import _schedule as _redcap_schedule
from .xmlsafe import local, parse

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
REDCAP_NS = "https://projectredcap.org"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DATATYPE_TO_ODM = {
    "text": "text",
    "integer": "integer",
    "decimal": "float",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "boolean": "boolean",
    "file": "text",
}
ODM_TO_DATATYPE = {
    "text": "text",
    "string": "text",
    "integer": "integer",
    "float": "decimal",
    "double": "decimal",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "boolean": "boolean",
}


def _q(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


# ---------------------------------------------------------------------------- writing


def _oid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)


def _translated(parent, tag: str, text: str) -> None:
    node = etree.SubElement(parent, _q(tag))
    translated = etree.SubElement(node, _q("TranslatedText"))
    translated.set(XML_LANG, "en")
    translated.text = text


def _alias(parent, context: str, name: str) -> None:
    etree.SubElement(parent, _q("Alias"), Context=context, Name=name)


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def metadata_version_element(
    forms: list[FormFile],
    elements: dict[str, DataElement],
    schedule: ScheduleFile | None,
    *,
    oid: str = "MDV.1",
    name: str = "Capture metadata",
) -> etree._Element:
    """An ODM 1.3.2 <MetaDataVersion> for `forms` (with their `elements`) and `schedule`."""
    mdv = etree.Element(_q("MetaDataVersion"), OID=oid, Name=name)
    form_oid = {f.ref: _oid(f"F.{f.form}.{f.version}") for f in forms}
    repeating_forms: set[str] = set()
    if schedule is not None:
        protocol = etree.SubElement(mdv, _q("Protocol"))
        order = 0
        event_defs = []
        for arm in schedule.arms:
            for event in arm.events:
                order += 1
                event_oid = _oid(f"SE.{arm.name}.{event.name}")
                etree.SubElement(
                    protocol,
                    _q("StudyEventRef"),
                    StudyEventOID=event_oid,
                    OrderNumber=str(order),
                    Mandatory="No",
                )
                event_defs.append((arm, event, event_oid))
                repeating_forms.update(e.form for e in event.forms if e.repeating)
        for arm, event, event_oid in event_defs:
            title = event.title if len(schedule.arms) == 1 else f"{event.title} ({arm.title})"
            node = etree.SubElement(
                mdv, _q("StudyEventDef"), OID=event_oid, Name=title, Repeating="No", Type="Scheduled"
            )
            for n, entry in enumerate(event.forms, start=1):
                etree.SubElement(
                    node, _q("FormRef"), FormOID=form_oid[entry.form], OrderNumber=str(n), Mandatory="No"
                )
            _alias(node, "Capture:arm", arm.name)
            _alias(node, "Capture:day", f"{event.day} -{event.window_before} +{event.window_after}")
    groups = []  # (oid, name, repeating, [(item, mandatory, method, condition)])
    conditions, methods = [], []
    item_widgets: dict[str, str] = {}
    for form in forms:
        node = etree.SubElement(
            mdv,
            _q("FormDef"),
            OID=form_oid[form.ref],
            Name=form.title,
            Repeating="Yes" if form.ref in repeating_forms else "No",
        )
        if form.description:
            _translated(node, "Description", form.description)
        n = 0
        for section in form.sections:
            chunks: list[tuple[str, bool, list[Item]]] = []
            for entry in section.items:
                if isinstance(entry, ItemGroup):
                    label = entry.label or entry.group
                    chunks.append(
                        (
                            f"{section.title}: {label}" if entry.repeating else section.title,
                            entry.repeating,
                            entry.items,
                        )
                    )
                elif chunks and not chunks[-1][1]:
                    chunks[-1][2].append(entry)
                else:
                    chunks.append((section.title, False, [entry]))
            for title, repeating, items in chunks:
                n += 1
                group_oid = _oid(f"IG.{form.form}.{form.version}.{n}")
                etree.SubElement(node, _q("ItemGroupRef"), ItemGroupOID=group_oid, Mandatory="No")
                refs = []
                for item in items:
                    element = elements[item.element]
                    item_name = item.name or element.name
                    method = condition = None
                    if item.calculation:
                        method = _oid(f"MT.{form.form}.{form.version}.{item_name}")
                        methods.append((method, item_name, item.calculation))
                    if item.branching:
                        condition = _oid(f"CD.{form.form}.{form.version}.{item_name}")
                        conditions.append((condition, item_name, item.branching))
                    if item.widget:
                        item_widgets.setdefault(item.element, item.widget)
                    refs.append((item, item.required, method, condition))
                groups.append((group_oid, title, repeating, refs))
        _alias(node, "Capture", form.ref)
        if form.instrument:
            _alias(node, "REDCap:instrument", form.instrument)
    for group_oid, title, repeating, refs in groups:
        node = etree.SubElement(
            mdv, _q("ItemGroupDef"), OID=group_oid, Name=title, Repeating="Yes" if repeating else "No"
        )
        for order, (item, mandatory, method, condition) in enumerate(refs, start=1):
            attrs = {
                "ItemOID": _oid(f"I.{item.element.replace('@', '.')}"),
                "OrderNumber": str(order),
                "Mandatory": "Yes" if mandatory else "No",
            }
            if condition:
                attrs["CollectionExceptionConditionOID"] = condition
            if method:
                attrs["MethodOID"] = method
            etree.SubElement(node, _q("ItemRef"), **attrs)
    used = []
    for form in forms:
        for section in form.sections:
            for entry in section.items:
                for item in entry.items if isinstance(entry, ItemGroup) else [entry]:
                    if item.element not in used:
                        used.append(item.element)
    for ref in used:
        element = elements[ref]
        attrs = {
            "OID": _oid(f"I.{ref.replace('@', '.')}"),
            "Name": element.name,
            "DataType": DATATYPE_TO_ODM[element.datatype],
        }
        if element.max_length and element.datatype == "text":
            attrs["Length"] = str(element.max_length)
        if element.decimal_places is not None:
            attrs["SignificantDigits"] = str(element.decimal_places)
        node = etree.SubElement(mdv, _q("ItemDef"), **attrs)
        if element.definition:
            _translated(node, "Description", element.definition)
        _translated(node, "Question", element.question)
        for bound, comparator in ((element.min, "GE"), (element.max, "LE")):
            if bound is not None:
                check = etree.SubElement(node, _q("RangeCheck"), Comparator=comparator, SoftHard="Hard")
                etree.SubElement(check, _q("CheckValue")).text = _number(bound)
        if element.permissible_values:
            etree.SubElement(node, _q("CodeListRef"), CodeListOID=_oid(f"CL.{ref.replace('@', '.')}"))
        _alias(node, "Capture", ref)
        if not element.public_id.startswith(LOCAL_PREFIX):
            _alias(node, "caDSR", f"{element.public_id}v{element.version}")
        for concept in element.concepts:
            _alias(node, "nci:ExtCodeID", concept)
        if element.unit:
            _alias(node, "Capture:unit", element.unit)
        if element.validation:
            _alias(node, "REDCap:validation", element.validation)
        if element.display_format:
            _alias(node, "Capture:display_format", element.display_format)
        if element.identifier:
            _alias(node, "Capture:identifier", "yes")
        if ref in item_widgets:
            _alias(node, "Capture:widget", item_widgets[ref])
    for ref in used:
        element = elements[ref]
        if not element.permissible_values:
            continue
        kind = {"integer": "integer", "decimal": "float"}.get(element.datatype, "text")
        node = etree.SubElement(
            mdv, _q("CodeList"), OID=_oid(f"CL.{ref.replace('@', '.')}"), Name=element.name, DataType=kind
        )
        for pv in element.permissible_values:
            item = etree.SubElement(node, _q("CodeListItem"), CodedValue=pv.code)
            _translated(item, "Decode", pv.meaning)
            if pv.concept:
                _alias(item, "nci:ExtCodeID", pv.concept)
    for condition, item_name, expression in conditions:
        node = etree.SubElement(mdv, _q("ConditionDef"), OID=condition, Name=f"hide {item_name}")
        _translated(node, "Description", f"{item_name} is collected only when {expression}")
        etree.SubElement(node, _q("FormalExpression"), Context="REDCap").text = f"not ({expression})"
    for method, item_name, expression in methods:
        node = etree.SubElement(
            mdv, _q("MethodDef"), OID=method, Name=f"calculate {item_name}", Type="Computation"
        )
        _translated(node, "Description", f"{item_name} = {expression}")
        etree.SubElement(node, _q("FormalExpression"), Context="REDCap").text = expression
    return mdv


def write_odm(
    forms: list[FormFile],
    elements: dict[str, DataElement],
    schedule: ScheduleFile | None,
    *,
    study_oid: str,
    study_name: str,
    file_oid: str | None = None,
    created: str | None = None,
) -> tuple[bytes, list[Problem]]:
    """A whole ODM 1.3.2 Snapshot file with one Study and its MetaDataVersion; checked against the schema."""
    from django.utils import timezone

    root = etree.Element(
        _q("ODM"),
        nsmap={None: ODM_NS},
        FileType="Snapshot",
        Granularity="Metadata",
        FileOID=_oid(file_oid or f"{study_oid}.metadata"),
        CreationDateTime=created or timezone.now().replace(microsecond=0).isoformat(),
        ODMVersion="1.3.2",
        Originator="Capture",
    )
    study = etree.SubElement(root, _q("Study"), OID=_oid(study_oid))
    variables = etree.SubElement(study, _q("GlobalVariables"))
    etree.SubElement(variables, _q("StudyName")).text = study_name
    etree.SubElement(variables, _q("StudyDescription")).text = study_name
    etree.SubElement(variables, _q("ProtocolName")).text = schedule.ref if schedule else study_name
    version_oid = f"MDV.{schedule.schedule}.{schedule.version}" if schedule else "MDV.1"
    study.append(metadata_version_element(forms, elements, schedule, oid=_oid(version_oid), name=study_name))
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    problems = [Problem(f"ODM schema: {error}") for error in validate_odm(data)]
    return data, problems


@cache
def _schema() -> etree.XMLSchema:
    import odmlib

    path = Path(odmlib.__file__).parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False)))


def validate_odm(data: bytes) -> list[str]:
    """Schema errors of an ODM 1.3.2 document (empty when valid), against the XSD shipped in odmlib."""
    schema = _schema()
    document = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))  # noqa: S320 - our own output or checked input
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


# ---------------------------------------------------------------------------- reading


def _find(node, tag: str):
    return node.find(_q(tag)) if node is not None else None


def _findall(node, tag: str) -> list:
    return node.findall(_q(tag)) if node is not None else []


def _text_of(node, tag: str) -> str:
    """English (or the first) TranslatedText under `tag`."""
    holder = _find(node, tag)
    if holder is None:
        return ""
    texts = _findall(holder, "TranslatedText")
    chosen = next((t for t in texts if t.get(XML_LANG, "en").startswith("en")), texts[0] if texts else None)
    return "".join(chosen.itertext()).strip() if chosen is not None else ""


def _aliases(node) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias in _findall(node, "Alias"):
        out.setdefault(alias.get("Context", ""), []).append(alias.get("Name", ""))
    return out


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"x_{slug}" if slug else "x"
    return slug[:40].rstrip("_")


def read_odm(data: bytes | str, *, project: str, source: str = "metadata.xml", title: str = "") -> Conversion:
    """Definitions from an ODM file: CDISC ODM 1.3.x metadata, or a REDCap project XML."""
    conversion = Conversion(source=source, kind="odm", title=title)
    try:
        root = parse(data)
    except ValueError as exc:
        conversion.error(str(exc))
        return conversion
    if local(root.tag) != "ODM" or etree.QName(root).namespace != ODM_NS:
        conversion.error(
            f"the root element is <{local(root.tag)}>, not an ODM 1.3 <ODM>. Fix: upload an ODM 1.3.x file "
            "(CDISC ODM, or a REDCap project XML)."
        )
        return conversion
    if not re.fullmatch(NAME_RE, project):
        conversion.error(f"project key {project!r} must be lower case letters, digits and underscores.")
        return conversion
    study = _find(root, "Study")
    mdv = _find(study, "MetaDataVersion")
    if mdv is None:
        conversion.error(
            "the file has no Study/MetaDataVersion. Fix: export the study's metadata, not only data."
        )
        return conversion
    conversion.title = title or _text_plain(_find(_find(study, "GlobalVariables"), "StudyName")) or project
    if REDCAP_NS in root.nsmap.values() or any(k.startswith(f"{{{REDCAP_NS}}}") for k in mdv.attrib):
        _read_redcap(conversion, mdv, project)
    else:
        _read_cdisc(conversion, mdv, project, source)
    conversion.cross_check()
    return conversion


def _text_plain(node) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _rc(node, name: str) -> str:
    return node.get(f"{{{REDCAP_NS}}}{name}", "") if node is not None else ""


def _read_redcap(conversion: Conversion, mdv, project: str) -> None:
    """A REDCap project XML: rebuild its dictionary rows from the redcap: attributes, then convert them."""
    item_defs = {n.get("OID"): n for n in _findall(mdv, "ItemDef")}
    groups = {n.get("OID"): n for n in _findall(mdv, "ItemGroupDef")}
    code_lists = {n.get("OID"): n for n in _findall(mdv, "CodeList")}
    columns: dict[str, int] = {}  # XML has lines, not columns: problems name the dictionary column
    rows: list[rc.Row] = []
    repeating: set[str] = set()
    seen: set[str] = set()
    for form in _findall(mdv, "FormDef"):
        instrument = _rc(form, "FormName") or form.get("OID", "").removeprefix("Form.")
        if form.get("Repeating") == "Yes":
            repeating.add(instrument)
        for group_ref in _findall(form, "ItemGroupRef"):
            for item_ref in _findall(groups.get(group_ref.get("ItemGroupOID")), "ItemRef"):
                item = item_defs.get(item_ref.get("ItemOID"))
                if item is None:
                    conversion.error(
                        f"ItemRef {item_ref.get('ItemOID')!r} names no ItemDef.", line=item_ref.sourceline
                    )
                    continue
                variable = _rc(item, "Variable") or item.get("Name", "")
                if variable in seen:
                    continue  # the other options of a checkbox (gym___1, gym___2, ...)
                seen.add(variable)
                if variable == f"{instrument}_complete":
                    continue  # REDCap's form status: Capture keeps it as each record's status
                rows.append(
                    rc.Row(item.sourceline or 0, _redcap_row(item, instrument, variable, code_lists), columns)
                )
    if not rows:
        conversion.error("the project XML has no fields. Fix: export it with its metadata (Project XML).")
        return
    rc.build_from_rows(conversion, rows, project)
    if conversion.errors:
        return
    plan = _redcap_plan(conversion, mdv)
    conversion.schedule = _redcap_schedule(conversion, project, plan, repeating)


def _redcap_row(item, instrument: str, variable: str, code_lists: dict) -> dict[str, str]:
    field_type = _rc(item, "FieldType")
    choices = ""
    code_list = (
        code_lists.get(_find(item, "CodeListRef").get("CodeListOID"))
        if _find(item, "CodeListRef") is not None
        else None
    )
    if field_type == "checkbox" and code_list is not None:
        choices = _rc(code_list, "CheckboxChoices")
    elif field_type in ("select", "radio", "dropdown") and code_list is not None:
        choices = " | ".join(
            f"{ci.get('CodedValue')}, {_text_of(ci, 'Decode')}" for ci in _findall(code_list, "CodeListItem")
        )
    elif field_type == "calc":
        choices = _rc(item, "Calculation")
    elif field_type == "slider":
        choices = _rc(item, "SliderLabels")
    elif field_type == "sql":
        choices = _rc(item, "SQL") or _rc(item, "Calculation")
    low = high = ""
    for check in _findall(item, "RangeCheck"):
        value = _text_plain(_find(check, "CheckValue"))
        if check.get("Comparator") in ("GE", "GT"):
            low = value
        elif check.get("Comparator") in ("LE", "LT"):
            high = value
    validation = _rc(item, "TextValidationType")
    if field_type == "slider" and _rc(item, "ShowSliderNumber") in ("1", "number"):
        validation = "number"
    return {
        "field_name": variable,
        "form_name": instrument,
        "section_header": _rc(item, "SectionHeader"),
        "field_type": field_type,
        "field_label": _text_of(item, "Question"),
        "select_choices_or_calculations": choices,
        "field_note": _rc(item, "FieldNote"),
        "text_validation_type_or_show_slider_number": validation,
        "text_validation_min": low,
        "text_validation_max": high,
        "identifier": _rc(item, "Identifier"),
        "branching_logic": _rc(item, "BranchingLogic"),
        "required_field": _rc(item, "RequiredField"),
        "custom_alignment": _rc(item, "CustomAlignment"),
        "question_number": _rc(item, "QuestionNumber"),
        "matrix_group_name": _rc(item, "MatrixGroupName"),
        "matrix_ranking": _rc(item, "MatrixRanking"),
        "field_annotation": _rc(item, "FieldAnnotation"),
    }


def _redcap_plan(conversion: Conversion, mdv) -> dict | None:
    events = _findall(mdv, "StudyEventDef")
    if not events:
        return None
    plan: dict = {}
    for event in events:
        arm_num = _rc(event, "ArmNum") or "1"
        unique = _rc(event, "UniqueEventName") or event.get("OID", "").removeprefix("Event.")
        arm = plan.setdefault(arm_num, {"title": _rc(event, "ArmName") or f"Arm {arm_num}", "events": {}})

        def whole(text: str) -> int:
            try:
                return int(float(text or 0))
            except ValueError:
                return 0

        arm["events"][unique] = {
            "name": rc.event_key(unique, arm_num),
            "title": _rc(event, "EventName") or event.get("Name", unique),
            "day": whole(_rc(event, "DayOffset")),
            "window_before": whole(_rc(event, "OffsetMin")),
            "window_after": whole(_rc(event, "OffsetMax")),
            "forms": [
                _rc(ref, "FormName") or ref.get("FormOID", "").removeprefix("Form.")
                for ref in _findall(event, "FormRef")
            ],
            "line": event.sourceline,
        }
    return plan


def _read_cdisc(conversion: Conversion, mdv, project: str, source: str) -> None:
    item_defs = {n.get("OID"): n for n in _findall(mdv, "ItemDef")}
    groups = {n.get("OID"): n for n in _findall(mdv, "ItemGroupDef")}
    code_lists = {n.get("OID"): n for n in _findall(mdv, "CodeList")}
    conditions = {n.get("OID"): n for n in _findall(mdv, "ConditionDef")}
    methods = {n.get("OID"): n for n in _findall(mdv, "MethodDef")}
    elements: dict[str, DataElement] = {}  # ItemDef OID -> element
    names: set[str] = set()
    widgets: dict[str, str] = {}
    for oid, node in item_defs.items():
        element = _cdisc_element(conversion, node, code_lists, project, source, names)
        if element is not None:
            elements[oid] = element
            widget = _aliases(node).get("Capture:widget", [None])[0]
            if widget:
                widgets[oid] = widget
    conversion.elements = list({e.ref: e for e in elements.values()}.values())
    form_names: dict[str, str] = {}
    used_form_names: set[str] = set()
    for form in _findall(mdv, "FormDef"):
        aliases = _aliases(form)
        base = aliases.get("REDCap:instrument", [None])[0] or _slug(
            form.get("Name") or form.get("OID", "form")
        )
        capture_ref = aliases.get("Capture", [None])[0]
        name = capture_ref.split("@")[0] if capture_ref else f"{project}_{base}"
        while name in used_form_names:
            name = f"{name}_2"
        used_form_names.add(name)
        form_names[form.get("OID")] = name
        sections = []
        for group_ref in _findall(form, "ItemGroupRef"):
            group = groups.get(group_ref.get("ItemGroupOID"))
            if group is None:
                conversion.error(
                    f"FormDef {form.get('OID')!r}: ItemGroupRef {group_ref.get('ItemGroupOID')!r} names no ItemGroupDef.",
                    line=group_ref.sourceline,
                )
                continue
            items = []
            for item_ref in _findall(group, "ItemRef"):
                element = elements.get(item_ref.get("ItemOID"))
                if element is None:
                    if item_ref.get("ItemOID") not in item_defs:
                        conversion.error(
                            f"ItemRef {item_ref.get('ItemOID')!r} names no ItemDef.", line=item_ref.sourceline
                        )
                    continue
                items.append(_cdisc_item(conversion, item_ref, element, conditions, methods, widgets))
            if not items:
                conversion.warn(
                    f"ItemGroupDef {group.get('OID')!r} has no usable items; left out.", line=group.sourceline
                )
                continue
            title = group.get("Name") or group.get("OID")
            if group.get("Repeating") == "Yes":
                entries = [
                    ItemGroup(
                        group=_slug(group.get("OID", "group")), label=title, repeating=True, items=items
                    )
                ]
            else:
                entries = items
            sections.append(Section(title=title, items=entries))
        if not sections:
            conversion.warn(f"FormDef {form.get('OID')!r} has no items; left out.", line=form.sourceline)
            continue
        try:
            conversion.forms.append(
                FormFile(
                    form=name,
                    version=capture_ref.split("@")[1] if capture_ref else "1.0",
                    title=form.get("Name") or name,
                    description=_text_of(form, "Description"),
                    instrument=aliases.get("REDCap:instrument", [None])[0],
                    sections=sections,
                )
            )
        except ValidationError as exc:
            conversion.error(f"FormDef {form.get('OID')!r}: {exc}", line=form.sourceline)
    refs = {f.form: f.ref for f in conversion.forms}
    event_defs = {n.get("OID"): n for n in _findall(mdv, "StudyEventDef")}
    ordered = [ref.get("StudyEventOID") for ref in _findall(_find(mdv, "Protocol"), "StudyEventRef")]
    ordered += [oid for oid in event_defs if oid not in ordered]
    arms: dict[str, list] = {}
    arm_titles: dict[str, str] = {}
    for oid in ordered:
        node = event_defs.get(oid)
        if node is None:
            conversion.error(f"Protocol names StudyEvent {oid!r}, which is not defined.")
            continue
        entries = []
        for ref in _findall(node, "FormRef"):
            name = form_names.get(ref.get("FormOID"))
            if name in refs:
                form_node = next(f for f in _findall(mdv, "FormDef") if f.get("OID") == ref.get("FormOID"))
                entries.append(EventForm(form=refs[name], repeating=form_node.get("Repeating") == "Yes"))
        if not entries:
            conversion.warn(
                f"StudyEventDef {oid!r} has no forms; Capture events hold at least one, so it is left out.",
                line=node.sourceline,
            )
            continue
        aliases = _aliases(node)
        arm = aliases.get("Capture:arm", ["arm_1"])[0]
        day, before, after = 0, 0, 0
        if "Capture:day" in aliases:
            match = re.fullmatch(r"(-?\d+) -(\d+) \+(\d+)", aliases["Capture:day"][0])
            if match:
                day, before, after = (int(g) for g in match.groups())
        title = node.get("Name") or oid
        if node.get("Repeating") == "Yes":
            conversion.warn(
                f"StudyEventDef {oid!r} repeats; Capture events do not, so its forms repeat instead.",
                line=node.sourceline,
            )
            entries = [EventForm(form=e.form, repeating=True) for e in entries]
        event_name = _slug(oid.split(".")[-1] if "." in oid else oid)
        arm_titles.setdefault(arm, "Arm 1" if arm == "arm_1" else arm.replace("_", " ").capitalize())
        taken = {e.name for e in arms.get(arm, [])}
        while event_name in taken:
            event_name = f"{event_name}_2"
        arms.setdefault(arm, []).append(
            Event(
                name=event_name,
                title=re.sub(r" \([^)]*\)$", "", title),
                day=day,
                window_before=before,
                window_after=after,
                forms=entries,
            )
        )
    if arms:
        try:
            conversion.schedule = ScheduleFile(
                schedule=project,
                version="1.0",
                title=conversion.title or project,
                arms=[Arm(name=name, title=arm_titles[name], events=evs) for name, evs in arms.items()],
            )
        except ValidationError as exc:
            conversion.error(f"schedule: {exc}")
    else:
        conversion.note("the file has no StudyEventDef: forms and elements load without a schedule.")


def _cdisc_element(conversion, node, code_lists, project, source, names) -> DataElement | None:
    oid = node.get("OID", "")
    aliases = _aliases(node)
    where = {"line": node.sourceline, "where": f"ItemDef {oid!r}"}
    raw_type = node.get("DataType", "text")
    datatype = ODM_TO_DATATYPE.get(raw_type)
    if datatype is None:
        datatype = "text"
        conversion.warn(
            f"ODM datatype {raw_type!r} (e.g. a partial date) has no Capture equivalent; values are stored as text, "
            "unchecked, and the datatype is kept as the validation name.",
            **where,
        )
    capture_ref = aliases.get("Capture", [None])[0]
    cadsr = aliases.get("caDSR", [None])[0]
    if capture_ref:
        public_id, version = capture_ref.split("@")
    elif cadsr and re.fullmatch(r"\d+v[0-9.]+", cadsr):
        public_id, version = cadsr.split("v", 1)
    else:
        public_id, version = None, "1.0"
    name = None
    for context in ("CDASH", "SDTM", "CDASH/SDTM"):
        for candidate in aliases.get(context, []):
            slug = _slug(candidate)
            if slug not in names:
                name = slug
                break
        if name:
            break
    if capture_ref:
        name = node.get("Name") or name
    if not name or name in names:
        stem = re.sub(r"^(ODM\.)?(IT|I)\.", "", oid)
        name = _slug(node.get("SASFieldName") or stem)
    while name in names:
        name = f"{name}_2"
    names.add(name)
    if public_id is None:
        public_id = f"{LOCAL_PREFIX}odm.{project}.{name}"
        if len(public_id) > 64:
            public_id = public_id[:64].rstrip("._")
    fields: dict = {
        "public_id": public_id,
        "version": version,
        "name": name,
        "long_name": (node.get("Name") or name)[:255],
        "question": _text_of(node, "Question") or node.get("Name") or name,
        "definition": _text_of(node, "Description"),
        "datatype": datatype,
        "source": f"ODM {source} ItemDef {oid}",
    }
    if datatype == "text" and node.get("Length", "").isdigit():
        fields["max_length"] = int(node.get("Length"))
    if datatype == "decimal" and node.get("SignificantDigits", "").isdigit():
        fields["decimal_places"] = int(node.get("SignificantDigits"))
    if raw_type not in ODM_TO_DATATYPE and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", raw_type):
        fields["validation"] = raw_type
    for check in _findall(node, "RangeCheck"):
        value = _text_plain(_find(check, "CheckValue"))
        key = {"GE": "min", "GT": "min", "LE": "max", "LT": "max"}.get(check.get("Comparator", ""))
        if key and datatype in ("integer", "decimal"):
            try:
                fields[key] = float(value)
            except ValueError:
                conversion.warn(f"range check value {value!r} is not a number; left out.", **where)
            if check.get("Comparator") in ("GT", "LT"):
                conversion.warn("a strict range check (GT/LT) became an inclusive limit (GE/LE).", **where)
        elif key:
            conversion.warn(f"a range check on a {datatype} item is not kept.", **where)
    for context, target in (
        ("Capture:unit", "unit"),
        ("REDCap:validation", "validation"),
        ("Capture:display_format", "display_format"),
    ):
        if context in aliases:
            fields[target] = aliases[context][0]
    if "Capture:identifier" in aliases:
        fields["identifier"] = True
    concepts = [c for c in aliases.get("nci:ExtCodeID", []) if re.fullmatch(r"C\d+(:C\d+)*", c)]
    if concepts:
        fields["concepts"] = concepts
    ref = _find(node, "CodeListRef")
    if ref is not None:
        code_list = code_lists.get(ref.get("CodeListOID"))
        if code_list is None:
            conversion.warn(
                f"CodeListRef {ref.get('CodeListOID')!r} names no CodeList in the file, so the item is free "
                "text. Fix: export the ODM with its code lists, or edit the element's permissible values.",
                **where,
            )
            code_list = etree.Element(_q("CodeList"))
        values = []
        for ci in _findall(code_list, "CodeListItem"):
            value = {
                "code": ci.get("CodedValue", ""),
                "meaning": _text_of(ci, "Decode") or ci.get("CodedValue", ""),
            }
            concept = next(iter(_aliases(ci).get("nci:ExtCodeID", [])), None)
            if concept and re.fullmatch(r"C\d+(:C\d+)*", concept):
                value["concept"] = concept
            values.append(value)
        for ei in _findall(code_list, "EnumeratedItem"):
            value = {"code": ei.get("CodedValue", ""), "meaning": ei.get("CodedValue", "")}
            concept = next(iter(_aliases(ei).get("nci:ExtCodeID", [])), None)
            if concept and re.fullmatch(r"C\d+(:C\d+)*", concept):
                value["concept"] = concept
            values.append(value)
        if _find(code_list, "ExternalCodeList") is not None and not values:
            external = _find(code_list, "ExternalCodeList")
            conversion.warn(
                f"the external code list {external.get('Dictionary', '')} {external.get('Version', '')} is not "
                "included in the file; the item is free text with the dictionary named as its ontology.",
                **where,
            )
            fields["ontology"] = f"{external.get('Dictionary', '')} {external.get('Version', '')}".strip()
        if values:
            fields["permissible_values"] = values
    if public_id.isdigit() and not fields["source"]:
        fields["source"] = f"ODM {source}"
    try:
        return DataElement.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}.", **where)
        return None


def _cdisc_item(conversion, item_ref, element, conditions, methods, widgets) -> Item:
    fields: dict = {"element": element.ref, "required": item_ref.get("Mandatory") == "Yes"}
    condition = conditions.get(item_ref.get("CollectionExceptionConditionOID"))
    if condition is not None:
        expression = _formal(condition)
        if expression.startswith("not (") and expression.endswith(")"):
            fields["branching"] = expression[5:-1]
        elif expression:
            fields["branching"] = f"not ({expression})"
            conversion.note(
                f"item {element.name!r}: ODM's collection exception was turned into branching (show when not).",
                line=item_ref.sourceline,
            )
    method = methods.get(item_ref.get("MethodOID"))
    if method is not None:
        expression = _formal(method)
        if expression:
            fields["calculation"] = expression
    widget = widgets.get(item_ref.get("ItemOID"))
    if widget and (widget != "checkbox" or element.permissible_values):
        fields["widget"] = widget
    return Item.model_validate(fields)


def _formal(node) -> str:
    expressions = _findall(node, "FormalExpression")
    return _text_plain(expressions[0]) if expressions else ""
