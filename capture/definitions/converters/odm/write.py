"""Capture definitions out as CDISC ODM 1.3.2 metadata: `metadata_version_element` (reused by the
exports app), `write_odm` (a whole Snapshot file) and `validate_odm` (against the XSD in odmlib)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lxml import etree

from ...schema import LOCAL_PREFIX, DataElement, FormFile, Item, ItemGroup, ScheduleFile, Section
from .. import Problem
from .common import DATATYPE_TO_ODM, ODM_NS, XML_LANG, _oid, _q


def _translated(parent, tag: str, text: str) -> None:
    node = etree.SubElement(parent, _q(tag))
    translated = etree.SubElement(node, _q("TranslatedText"))
    translated.set(XML_LANG, "en")
    translated.text = text


def _alias(parent, context: str, name: str) -> None:
    etree.SubElement(parent, _q("Alias"), Context=context, Name=name)


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass
class _Collected:
    """What the FormDefs gather for the definitions written after them."""

    groups: list = field(
        default_factory=list
    )  # (oid, name, repeating, [(item, mandatory, method, condition)])
    conditions: list = field(default_factory=list)  # (oid, item name, branching expression)
    methods: list = field(default_factory=list)  # (oid, item name, calculation)
    item_widgets: dict[str, str] = field(default_factory=dict)  # element ref -> first widget


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
    repeating_forms = _protocol(mdv, schedule, form_oid) if schedule is not None else set()
    collected = _Collected()
    for form in forms:
        _form_def(mdv, form, form_oid[form.ref], form.ref in repeating_forms, elements, collected)
    for group in collected.groups:
        _item_group_def(mdv, *group)
    used = _elements_used(forms)
    for ref in used:
        _item_def(mdv, ref, elements[ref], collected.item_widgets)
    for ref in used:
        _code_list(mdv, ref, elements[ref])
    for condition, item_name, expression in collected.conditions:
        node = etree.SubElement(mdv, _q("ConditionDef"), OID=condition, Name=f"hide {item_name}")
        _translated(node, "Description", f"{item_name} is collected only when {expression}")
        etree.SubElement(node, _q("FormalExpression"), Context="REDCap").text = f"not ({expression})"
    for method, item_name, expression in collected.methods:
        node = etree.SubElement(
            mdv, _q("MethodDef"), OID=method, Name=f"calculate {item_name}", Type="Computation"
        )
        _translated(node, "Description", f"{item_name} = {expression}")
        etree.SubElement(node, _q("FormalExpression"), Context="REDCap").text = expression
    return mdv


def _protocol(mdv, schedule: ScheduleFile, form_oid: dict[str, str]) -> set[str]:
    """The Protocol and one StudyEventDef per event; returns the refs of forms that repeat somewhere."""
    repeating_forms: set[str] = set()
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
    return repeating_forms


def _form_def(mdv, form: FormFile, oid: str, repeating: bool, elements, collected: _Collected) -> None:
    """One FormDef with an ItemGroupRef per chunk of its sections; the groups go to `collected`."""
    node = etree.SubElement(
        mdv, _q("FormDef"), OID=oid, Name=form.title, Repeating="Yes" if repeating else "No"
    )
    if form.description:
        _translated(node, "Description", form.description)
    n = 0
    for section in form.sections:
        for title, repeating_group, items in _chunks(section):
            n += 1
            group_oid = _oid(f"IG.{form.form}.{form.version}.{n}")
            etree.SubElement(node, _q("ItemGroupRef"), ItemGroupOID=group_oid, Mandatory="No")
            refs = [_item_ref(form, item, elements, collected) for item in items]
            collected.groups.append((group_oid, title, repeating_group, refs))
    _alias(node, "Capture", form.ref)
    if form.instrument:
        _alias(node, "REDCap:instrument", form.instrument)


def _chunks(section: Section) -> list[tuple[str, bool, list[Item]]]:
    """A section as item groups: (title, repeating, items); plain items next to each other share one."""
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
    return chunks


def _item_ref(form: FormFile, item: Item, elements, collected: _Collected) -> tuple:
    """(item, mandatory, method OID, condition OID) of one item; its calculation and branching are collected."""
    element = elements[item.element]
    item_name = item.name or element.name
    method = condition = None
    if item.calculation:
        method = _oid(f"MT.{form.form}.{form.version}.{item_name}")
        collected.methods.append((method, item_name, item.calculation))
    if item.branching:
        condition = _oid(f"CD.{form.form}.{form.version}.{item_name}")
        collected.conditions.append((condition, item_name, item.branching))
    if item.widget:
        collected.item_widgets.setdefault(item.element, item.widget)
    return (item, item.required, method, condition)


def _item_group_def(mdv, group_oid: str, title: str, repeating: bool, refs: list) -> None:
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


def _elements_used(forms: list[FormFile]) -> list[str]:
    """The element refs of `forms`' items, each once, in order of first use."""
    used = []
    for form in forms:
        for section in form.sections:
            for entry in section.items:
                for item in entry.items if isinstance(entry, ItemGroup) else [entry]:
                    if item.element not in used:
                        used.append(item.element)
    return used


def _item_def(mdv, ref: str, element: DataElement, item_widgets: dict[str, str]) -> None:
    """One ItemDef: datatype, question, range checks and code list reference, then its aliases."""
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
    _item_aliases(node, ref, element, item_widgets.get(ref))


def _item_aliases(node, ref: str, element: DataElement, widget: str | None) -> None:
    """What ODM has no attribute for, as Alias elements of the ItemDef."""
    _alias(node, "Capture", ref)
    if not element.public_id.startswith(LOCAL_PREFIX):
        _alias(node, "caDSR", f"{element.public_id}v{element.version}")
    for concept in element.concepts:
        _alias(node, "nci:ExtCodeID", concept)
    for context, value in (
        ("Capture:unit", element.unit),
        ("REDCap:validation", element.validation),
        ("Capture:display_format", element.display_format),
        ("Capture:identifier", "yes" if element.identifier else None),
        ("Capture:widget", widget),
    ):
        if value:
            _alias(node, context, value)


def _code_list(mdv, ref: str, element: DataElement) -> None:
    """The CodeList of an element with permissible values (none for one without)."""
    if not element.permissible_values:
        return
    kind = {"integer": "integer", "decimal": "float"}.get(element.datatype, "text")
    node = etree.SubElement(
        mdv, _q("CodeList"), OID=_oid(f"CL.{ref.replace('@', '.')}"), Name=element.name, DataType=kind
    )
    for pv in element.permissible_values:
        item = etree.SubElement(node, _q("CodeListItem"), CodedValue=pv.code)
        _translated(item, "Decode", pv.meaning)
        if pv.concept:
            _alias(item, "nci:ExtCodeID", pv.concept)


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
