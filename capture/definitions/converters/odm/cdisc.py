"""CDISC ODM 1.3.x metadata in: the first MetaDataVersion's ItemDefs become elements (local ids
`capture.odm.<project>.<name>` unless a Capture or caDSR alias names a registered id), its FormDefs
forms (one section per ItemGroupDef; a repeating group stays repeating), and its StudyEventDefs a
schedule."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree
from pydantic import ValidationError

from ...schema import (
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
from .. import Conversion
from .common import ODM_TO_DATATYPE, _aliases, _find, _findall, _q, _slug, _text_of, _text_plain

CONCEPT = r"C\d+(:C\d+)*"


@dataclass
class _Defs:
    """The definitions of one MetaDataVersion by OID, and the elements read from its ItemDefs."""

    item_defs: dict
    groups: dict
    code_lists: dict
    conditions: dict
    methods: dict
    elements: dict[str, DataElement] = field(default_factory=dict)  # ItemDef OID -> element
    widgets: dict[str, str] = field(default_factory=dict)  # ItemDef OID -> Capture:widget alias

    @classmethod
    def of(cls, mdv) -> _Defs:
        def by_oid(tag: str) -> dict:
            return {n.get("OID"): n for n in _findall(mdv, tag)}

        return cls(
            item_defs=by_oid("ItemDef"),
            groups=by_oid("ItemGroupDef"),
            code_lists=by_oid("CodeList"),
            conditions=by_oid("ConditionDef"),
            methods=by_oid("MethodDef"),
        )


def _read_cdisc(conversion: Conversion, mdv, project: str, source: str) -> None:
    defs = _Defs.of(mdv)
    _read_elements(conversion, defs, project, source)
    form_names = _read_forms(conversion, mdv, defs, project)
    _read_schedule(conversion, mdv, project, form_names)


def _read_elements(conversion: Conversion, defs: _Defs, project: str, source: str) -> None:
    names: set[str] = set()
    for oid, node in defs.item_defs.items():
        element = _cdisc_element(conversion, node, defs.code_lists, project, source, names)
        if element is not None:
            defs.elements[oid] = element
            widget = _aliases(node).get("Capture:widget", [None])[0]
            if widget:
                defs.widgets[oid] = widget
    conversion.elements = list({e.ref: e for e in defs.elements.values()}.values())


# ---------------------------------------------------------------------------- forms


def _read_forms(conversion: Conversion, mdv, defs: _Defs, project: str) -> dict[str, str]:
    """Every FormDef as a form; returns FormDef OID -> form name."""
    form_names: dict[str, str] = {}
    used_form_names: set[str] = set()
    for form in _findall(mdv, "FormDef"):
        aliases = _aliases(form)
        base = aliases.get("REDCap:instrument", [None])[0] or _slug(
            form.get("Name") or form.get("OID", "form")
        )
        capture_ref = aliases.get("Capture", [None])[0]
        split = _split_ref(capture_ref) if capture_ref else None
        if capture_ref and split is None:
            conversion.error(
                f"FormDef {form.get('OID')!r}: the Capture alias {capture_ref!r} is not <form>@<version>. "
                "Fix: correct the alias or remove it.",
                line=form.sourceline,
            )
            continue
        name = split[0] if split else f"{project}_{base}"
        while name in used_form_names:
            name = f"{name}_2"
        used_form_names.add(name)
        form_names[form.get("OID")] = name
        _read_form(conversion, form, defs, name, capture_ref)
    return form_names


def _read_form(conversion: Conversion, form, defs: _Defs, name: str, capture_ref: str | None) -> None:
    sections: list[Section] = []
    for group_ref in _findall(form, "ItemGroupRef"):
        section = _read_section(conversion, form, group_ref, defs)
        if section is not None:
            sections.append(section)
    if not sections:
        conversion.warn(f"FormDef {form.get('OID')!r} has no items; left out.", line=form.sourceline)
        return
    try:
        conversion.forms.append(
            FormFile(
                form=name,
                version=_ref_version(capture_ref),
                title=form.get("Name") or name,
                description=_text_of(form, "Description"),
                instrument=_aliases(form).get("REDCap:instrument", [None])[0],
                sections=sections,
            )
        )
    except ValidationError as exc:
        conversion.error(f"FormDef {form.get('OID')!r}: {exc}", line=form.sourceline)


def _read_section(conversion: Conversion, form, group_ref, defs: _Defs) -> Section | None:
    """The section of one ItemGroupRef; None (with a problem) when the group is missing or empty."""
    group = defs.groups.get(group_ref.get("ItemGroupOID"))
    if group is None:
        conversion.error(
            f"FormDef {form.get('OID')!r}: ItemGroupRef {group_ref.get('ItemGroupOID')!r} names no ItemGroupDef.",
            line=group_ref.sourceline,
        )
        return None
    items = []
    for item_ref in _findall(group, "ItemRef"):
        element = defs.elements.get(item_ref.get("ItemOID"))
        if element is None:
            if item_ref.get("ItemOID") not in defs.item_defs:
                conversion.error(
                    f"ItemRef {item_ref.get('ItemOID')!r} names no ItemDef.", line=item_ref.sourceline
                )
            continue
        item = _cdisc_item(conversion, item_ref, element, defs.conditions, defs.methods, defs.widgets)
        if item is not None:
            items.append(item)
    if not items:
        conversion.warn(
            f"ItemGroupDef {group.get('OID')!r} has no usable items; left out.", line=group.sourceline
        )
        return None
    title = group.get("Name") or group.get("OID")
    if group.get("Repeating") == "Yes":
        entries: list[Item | ItemGroup] = [
            ItemGroup(group=_slug(group.get("OID", "group")), label=title, repeating=True, items=items)
        ]
    else:
        entries = list(items)
    return Section(title=title, items=entries)


def _cdisc_item(conversion, item_ref, element, conditions, methods, widgets) -> Item | None:
    """The item of one ItemRef; None (with errors at the ItemRef) when it does not validate."""
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
    try:
        return Item.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(
                f"item {element.name!r}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']} "
                f"(got {err.get('input')!r}). Fix: correct the ItemDef's Capture alias.",
                line=item_ref.sourceline,
                where=f"ItemRef {item_ref.get('ItemOID')!r}",
            )
        return None


def _formal(node) -> str:
    expressions = _findall(node, "FormalExpression")
    return _text_plain(expressions[0]) if expressions else ""


# ---------------------------------------------------------------------------- schedule


def _read_schedule(conversion: Conversion, mdv, project: str, form_names: dict[str, str]) -> None:
    """The StudyEventDefs, in the Protocol's order, as a schedule (arms from the Capture:arm alias)."""
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
        entries = _event_forms(mdv, node, form_names, refs)
        if not entries:
            conversion.warn(
                f"StudyEventDef {oid!r} has no forms; Capture events hold at least one, so it is left out.",
                line=node.sourceline,
            )
            continue
        _add_event(conversion, oid, node, entries, arms, arm_titles)
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


def _event_forms(mdv, node, form_names: dict[str, str], refs: dict[str, str]) -> list[EventForm]:
    entries = []
    for ref in _findall(node, "FormRef"):
        name = form_names.get(ref.get("FormOID"))
        if name in refs:
            form_node = next(f for f in _findall(mdv, "FormDef") if f.get("OID") == ref.get("FormOID"))
            entries.append(EventForm(form=refs[name], repeating=form_node.get("Repeating") == "Yes"))
    return entries


def _add_event(
    conversion: Conversion, oid: str, node, entries: list[EventForm], arms: dict, arm_titles: dict
) -> None:
    """One StudyEventDef as an event of its arm; a repeating event makes its forms repeat."""
    aliases = _aliases(node)
    arm = aliases.get("Capture:arm", ["arm_1"])[0]
    if not isinstance(arm, str) or not re.fullmatch(NAME_RE, arm):
        conversion.error(
            f"StudyEventDef {oid!r}: the Capture:arm alias {arm!r} is not an arm name (lower case letters, "
            "digits and underscores). Fix: give the alias a Name such as arm_1.",
            line=node.sourceline,
        )
        return
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


# ---------------------------------------------------------------------------- elements


def _cdisc_element(conversion, node, code_lists, project, source, names) -> DataElement | None:
    """The element of one ItemDef; None (with errors) when it does not validate."""
    oid = node.get("OID", "")
    aliases = _aliases(node)
    where = {"line": node.sourceline, "where": f"ItemDef {oid!r}"}
    raw_type = node.get("DataType", "text")
    datatype = _datatype(conversion, raw_type, where)
    capture_ref = aliases.get("Capture", [None])[0]
    if capture_ref and _split_ref(capture_ref) is None:
        conversion.error(
            f"the Capture alias {capture_ref!r} is not <public id>@<version>. Fix: correct the alias or remove it.",
            **where,
        )
        return None
    public_id, version = _registered_id(aliases, capture_ref)
    name = _element_name(node, aliases, capture_ref, oid, names)
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
    _type_fields(node, raw_type, datatype, fields)
    _range_checks(conversion, node, datatype, fields, where)
    _alias_fields(aliases, fields)
    ref = _find(node, "CodeListRef")
    if ref is not None:
        _code_list_fields(conversion, code_lists, ref, fields, where)
    if public_id.isdigit() and not fields["source"]:
        fields["source"] = f"ODM {source}"
    try:
        return DataElement.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}.", **where)
        return None


def _datatype(conversion: Conversion, raw_type: str, where: dict) -> str:
    """Capture's datatype for an ODM DataType; text (and a warning) for one Capture has not."""
    datatype = ODM_TO_DATATYPE.get(raw_type)
    if datatype is None:
        datatype = "text"
        conversion.warn(
            f"ODM datatype {raw_type!r} (e.g. a partial date) has no Capture equivalent; values are stored as text, "
            "unchecked, and the datatype is kept as the validation name.",
            **where,
        )
    return datatype


def _type_fields(node, raw_type: str, datatype: str, fields: dict) -> None:
    """Length of text, significant digits of decimals, and an unknown DataType kept as the validation name."""
    if datatype == "text" and node.get("Length", "").isdigit():
        fields["max_length"] = int(node.get("Length"))
    if datatype == "decimal" and node.get("SignificantDigits", "").isdigit():
        fields["decimal_places"] = int(node.get("SignificantDigits"))
    if raw_type not in ODM_TO_DATATYPE and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", raw_type):
        fields["validation"] = raw_type


def _registered_id(aliases: dict, capture_ref: str | None) -> tuple[str | None, str]:
    """(public id, version) from a Capture or caDSR alias; (None, "1.0") for a local element."""
    cadsr = aliases.get("caDSR", [None])[0]
    if capture_ref:
        parts = _split_ref(capture_ref)
        assert parts is not None  # _cdisc_element refused a malformed alias
        return parts
    if cadsr and re.fullmatch(r"\d+v[0-9.]+", cadsr):
        public_id, version = cadsr.split("v", 1)
        return public_id, version
    return None, "1.0"


def _ref_version(capture_ref: str | None) -> str:
    """The version of a form's Capture alias (checked when the form was read); "1.0" without one."""
    parts = _split_ref(capture_ref) if capture_ref else None
    return parts[1] if parts else "1.0"


def _split_ref(ref: str) -> tuple[str, str] | None:
    """(name or public id, version) of a Capture alias `<ref>@<version>`; None when it is not one."""
    parts = ref.split("@")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def _element_name(node, aliases: dict, capture_ref: str | None, oid: str, names: set[str]) -> str:
    """A name not yet in `names` (which it joins): a CDASH/SDTM alias, the ItemDef's Name, or its OID."""
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
    return name


def _range_checks(conversion: Conversion, node, datatype: str, fields: dict, where: dict) -> None:
    """RangeChecks as min and max of a number; strict ones become inclusive, others are reported."""
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


def _alias_fields(aliases: dict, fields: dict) -> None:
    """The fields Capture's writer put into Alias elements (unit, validation, ...) and concept codes."""
    for context, target in (
        ("Capture:unit", "unit"),
        ("REDCap:validation", "validation"),
        ("Capture:display_format", "display_format"),
    ):
        if context in aliases:
            fields[target] = aliases[context][0]
    if "Capture:identifier" in aliases:
        fields["identifier"] = True
    concepts = [c for c in aliases.get("nci:ExtCodeID", []) if re.fullmatch(CONCEPT, c)]
    if concepts:
        fields["concepts"] = concepts


def _code_list_fields(conversion: Conversion, code_lists: dict, ref, fields: dict, where: dict) -> None:
    """Permissible values from the CodeList `ref` names (or the ontology of an external one)."""
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
        meaning = _text_of(ci, "Decode") or ci.get("CodedValue", "")
        values.append(_with_concept(ci, {"code": ci.get("CodedValue", ""), "meaning": meaning}))
    for ei in _findall(code_list, "EnumeratedItem"):
        values.append(
            _with_concept(ei, {"code": ei.get("CodedValue", ""), "meaning": ei.get("CodedValue", "")})
        )
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


def _with_concept(node, value: dict) -> dict:
    """`value` with the NCI concept code of the node's first nci:ExtCodeID alias, when it is one."""
    concept = next(iter(_aliases(node).get("nci:ExtCodeID", [])), None)
    if concept and re.fullmatch(CONCEPT, concept):
        value["concept"] = concept
    return value
