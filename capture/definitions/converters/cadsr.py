"""caDSR to Capture: CDE XML exports become data elements, Form Builder (FormCart) XML becomes a form.

The ids are caDSR's own (public id and version), never local ones, and every element says in
`source:` which file gave it. Value meanings keep their NCI Thesaurus concept codes; the data element
concept's object class and property codes go to the element's `concepts:`.

A CDE export is one <DataElement> or a list of them (<DataElementsList>), with upper-case tags
(PUBLICID, VALUEDOMAIN/Datatype, PermissibleValues_ITEM/VALIDVALUE ...). A Form Builder export is
<forms><form> with <module>s of <question>s, each with its <dataElement> and <validValue>s; tag names
are matched without regard to case, and the few that differ between Form Builder releases are aliased.
"""

from __future__ import annotations

import re

from lxml import etree
from pydantic import ValidationError

from ..schema import NAME_RE, DataElement, FormFile, Item, ItemGroup, Section
from . import Conversion
from .xmlsafe import UnsafeXMLError, local, parse

CONCEPT = re.compile(r"^C\d+(:C\d+)*$")

# caDSR datatypes (classic and java.*) -> Capture datatypes.
DATATYPES = {
    "character": "text",
    "alphanumeric": "text",
    "varchar": "text",
    "java.lang.string": "text",
    "string": "text",
    "clob": "text",
    "number": "decimal",
    "numeric": "decimal",
    "java.lang.double": "decimal",
    "java.lang.float": "decimal",
    "float": "decimal",
    "decimal": "decimal",
    "integer": "integer",
    "java.lang.integer": "integer",
    "java.lang.long": "integer",
    "java.lang.short": "integer",
    "int": "integer",
    "date": "date",
    "java.sql.date": "date",
    "java.util.date": "datetime",  # a java.util.Date is an instant: date and time
    "datetime": "datetime",
    "java.sql.timestamp": "datetime",
    "time": "time",
    "boolean": "boolean",
    "java.lang.boolean": "boolean",
}
DISPLAY_FORMATS = {"MM/DD/YYYY": "mdy", "DD/MM/YYYY": "dmy", "YYYY-MM-DD": "ymd", "YYYYMMDD": "ymd"}


def _child(node, *names: str):
    """The first child whose tag (without namespace, any case) is one of `names`."""
    wanted = {n.lower() for n in names}
    for child in node:
        if isinstance(child.tag, str) and local(child.tag).lower() in wanted:
            return child
    return None


def _children(node, *names: str) -> list:
    wanted = {n.lower() for n in names}
    return [c for c in node if isinstance(c.tag, str) and local(c.tag).lower() in wanted]


def _text(node, *path: str) -> str:
    """Text at a path of child names (each step may list aliases separated by '|'); '' when absent
    or marked NULL="TRUE"."""
    for step in path:
        if node is None:
            return ""
        node = _child(node, *step.split("|"))
    if node is None or node.get("NULL") == "TRUE":
        return ""
    return " ".join("".join(node.itertext()).split())


def _name_from(*candidates: str) -> str:
    for candidate in candidates:
        name = re.sub(r"[^a-z0-9]+", "_", candidate.lower()).strip("_")
        if name and re.fullmatch(NAME_RE, name) and len(name) <= 60:
            return name
    base = re.sub(r"[^a-z0-9]+", "_", candidates[-1].lower()).strip("_") or "element"
    if not base[0].isalpha():
        base = f"cde_{base}"
    return base[:60].rstrip("_")


def _concepts(text: str) -> str | None:
    code = re.sub(r"\s*[,;|]\s*", ":", text.strip())
    return code if code and CONCEPT.match(code) else None


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def _load(data: bytes | str, conversion: Conversion):
    try:
        return parse(data)
    except UnsafeXMLError as exc:
        conversion.error(str(exc))
    except ValueError as exc:
        conversion.error(str(exc))
    return None


def _where(node) -> str:
    return node.getroottree().getpath(node)


def read_cde(data: bytes | str, *, source: str = "cde.xml") -> Conversion:
    """Data elements from a caDSR CDE XML export (one <DataElement> or a list of them)."""
    conversion = Conversion(source=source, kind="cadsr")
    root = _load(data, conversion)
    if root is None:
        return conversion
    nodes = (
        [root]
        if local(root.tag) == "DataElement"
        else [n for n in root.iter() if local(n.tag) == "DataElement"]
    )
    if not nodes:
        conversion.error(
            f"no <DataElement> in the file (the root is <{local(root.tag)}>). Fix: export the CDE from the caDSR "
            "CDE Browser as XML."
        )
        return conversion
    names: set[str] = set()
    for node in nodes:
        element = cde_element(node, conversion, source, names)
        if element is not None:
            conversion.elements.append(element)
    conversion.cross_check()
    return conversion


def cde_element(node, conversion: Conversion, source: str, names: set[str]) -> DataElement | None:
    public_id = _text(node, "PUBLICID")
    version = _text(node, "VERSION")
    where = f"DataElement {public_id or '?'} ({_where(node)})"
    if not public_id.isdigit() or not version:
        conversion.error(f"{where}: PUBLICID and VERSION are required. Fix: export the CDE again.")
        return None
    vd = _child(node, "VALUEDOMAIN")
    raw_type = _text(vd, "Datatype")
    datatype = DATATYPES.get(raw_type.lower())
    if datatype is None:
        datatype = "text"
        conversion.warn(
            f"{where}: caDSR datatype {raw_type!r} has no Capture equivalent; values are stored as text.",
        )
    long_name = _text(node, "LONGNAME") or _text(node, "PREFERREDNAME")
    question = _question_text(node, long_name)
    name = _name_from(_text(node, "PREFERREDNAME"), long_name)
    if name in names:
        name = f"{name}_{public_id}"
    names.add(name)
    fields: dict = {
        "public_id": public_id,
        "version": version,
        "name": name,
        "long_name": long_name[:255],
        "question": question,
        "definition": _text(node, "PREFERREDDEFINITION"),
        "datatype": datatype,
        "unit": _text(vd, "UnitOfMeasure"),
        "source": f"caDSR XML {source} (PUBLICID {public_id} v{version}, {_text(node, 'CONTEXTNAME')})",
    }
    fields.update(_value_domain(vd, datatype, where, conversion))
    dec = _child(node, "DATAELEMENTCONCEPT")
    concepts = [
        code
        for part in ("ObjectClass", "Property")
        if (code := _concepts(_text(dec, part, "PreferredName") if dec is not None else ""))
    ]
    if concepts:
        fields["concepts"] = concepts
    values = _permissible_values(vd, where, conversion)
    if values:
        fields["permissible_values"] = values
    try:
        return DataElement.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"{where}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}.")
        return None


def _question_text(node, long_name: str) -> str:
    """The preferred (else alternate) question text of the CDE's reference documents, else its long name."""
    question = long_name
    documents = _child(node, "REFERENCEDOCUMENTSLIST")
    if documents is not None:
        texts: dict[str, str] = {}
        for item in documents:
            texts.setdefault(_text(item, "DocumentType"), _text(item, "DocumentText"))
        question = texts.get("Preferred Question Text") or texts.get("Alternate Question Text") or question
    return question


def _permissible_values(vd, where: str, conversion: Conversion) -> list[dict]:
    """The value domain's valid values, each code once (a repeat with another meaning is an error)."""
    values = []
    seen: dict[str, dict] = {}
    pvs = _child(vd, "PermissibleValues") if vd is not None else None
    for pv in _children(pvs, "PermissibleValues_ITEM") if pvs is not None else []:
        code = _text(pv, "VALIDVALUE")
        value = {"code": code, "meaning": _text(pv, "VALUEMEANING") or code}
        concept_text = _text(pv, "MEANINGCONCEPTS")
        concept = _concepts(concept_text)
        if concept:
            value["concept"] = concept
        elif concept_text:
            conversion.warn(
                f"{where}: value {code!r}: {concept_text!r} is not an NCI Thesaurus code; left out."
            )
        if code in seen:
            if seen[code] != value:
                conversion.error(
                    f"{where}: the valid value {code!r} is listed twice with different meanings. Fix: ask the "
                    "registry's curators, or remove one of them from the file."
                )
            else:
                conversion.note(
                    f"{where}: the valid value {code!r} is listed more than once; it is kept once."
                )
            continue
        seen[code] = value
        values.append(value)
    return values


def _value_domain(vd, datatype: str, where: str, conversion: Conversion) -> dict:
    if vd is None:
        return {}
    out: dict = {}
    length = _text(vd, "MaximumLength|maximumLengthNumber")
    if length.isdigit() and datatype == "text" and int(length) > 0:
        out["max_length"] = int(length)
    if datatype in ("integer", "decimal"):
        for tag, key in (("MinimumValue|minimumValue", "min"), ("MaximumValue|maximumValue", "max")):
            raw = _text(vd, tag)
            if raw:
                number = _number(raw)
                if number is None:
                    conversion.warn(f"{where}: {key} {raw!r} is not a number; left out.")
                else:
                    out[key] = number
        places = _text(vd, "DecimalPlace|decimalPlace")
        if places.isdigit() and datatype == "decimal":
            out["decimal_places"] = int(places)
    display = _text(vd, "DisplayFormat|displayFormat")
    if display and datatype in ("date", "datetime"):
        fmt = DISPLAY_FORMATS.get(display.upper())
        if fmt:
            out["display_format"] = fmt
        else:
            conversion.warn(
                f"{where}: display format {display!r} is not one Capture knows; dates show as YYYY-MM-DD."
            )
    return out


# ---------------------------------------------------------------------------- Form Builder


def read_formcart(data: bytes | str, *, source: str = "form.xml") -> Conversion:
    """Forms (and the elements their questions use) from a caDSR Form Builder (FormCart) XML export."""
    conversion = Conversion(source=source, kind="formcart")
    root = _load(data, conversion)
    if root is None:
        return conversion
    forms = [root] if local(root.tag).lower() == "form" else _children(root, "form")
    if not forms:
        conversion.error(
            f"no <form> in the file (the root is <{local(root.tag)}>). Fix: download the form from caDSR Form "
            "Builder's cart as XML."
        )
        return conversion
    elements: dict[str, DataElement] = {}
    names: set[str] = set()
    for form in forms:
        built = _form(form, conversion, source, elements, names)
        if built is not None:
            conversion.forms.append(built)
    conversion.elements = list(elements.values())
    if not conversion.title and conversion.forms:
        conversion.title = conversion.forms[0].title
    conversion.cross_check()
    return conversion


def _form(node, conversion, source, elements, names) -> FormFile | None:
    title = _text(node, "longName")
    public_id = _text(node, "publicID|publicId")
    version = _text(node, "version") or "1.0"
    where = f"form {public_id or title!r} ({_where(node)})"
    sections: list[Section] = []
    for module in sorted(_children(node, "module"), key=lambda n: _order(n)):
        entries: list[Item] = []
        repeats = _text(module, "maximumQuestionRepeat")
        for question in sorted(_children(module, "question"), key=lambda n: _order(n)):
            item = _question(question, conversion, source, elements, names, where)
            if item is not None:
                entries.append(item)
        if not entries:
            conversion.warn(
                f"{where}: module {_text(module, 'longName')!r} has no usable questions; left out."
            )
            continue
        module_title = _text(module, "longName") or f"Module {len(sections) + 1}"
        items: list[Item | ItemGroup] = list(entries)
        if repeats.isdigit() and int(repeats) > 1:
            group = _name_from(module_title)
            items = [
                ItemGroup(
                    group=group, label=module_title, repeating=True, max_repeats=int(repeats), items=entries
                )
            ]
        sections.append(
            Section(title=module_title, description=_text(module, "instruction", "text"), items=items)
        )
    if not sections:
        conversion.error(
            f"{where}: the form has no modules with questions. Fix: export a form that has some."
        )
        return None
    name = _name_from(_text(node, "preferredName"), title, f"form_{public_id}")
    try:
        return FormFile(
            form=f"cadsr_{public_id}" if public_id.isdigit() else name,
            version=version if re.fullmatch(r"[0-9]+(\.[0-9]+)*", version) else "1.0",
            title=title or name,
            description=_text(node, "headerInstruction", "text"),
            sections=sections,
        )
    except ValidationError as exc:
        conversion.error(f"{where}: {exc}")
        return None


def _order(node) -> int:
    text = _text(node, "displayOrder")
    return int(text) if text.isdigit() else 0


def _question(node, conversion, source, elements, names, where) -> Item | None:
    de = _child(node, "dataElement")
    text = _text(node, "questionText") or _text(node, "longName")
    place = f"{where}, question {text[:40]!r}"
    if de is None:
        conversion.warn(
            f"{place}: has no data element; Capture items are built on elements, so it is left out."
        )
        return None
    public_id = _text(de, "publicID|publicId")
    version = _text(de, "version")
    if not public_id.isdigit() or not version:
        conversion.error(
            f"{place}: its data element has no public id and version. Fix: export the form again."
        )
        return None
    ref = f"{public_id}@{version}"
    if ref not in elements:
        element = _formcart_element(de, node, conversion, source, names, place)
        if element is None:
            return None
        elements[ref] = element
    element = elements[ref]
    multiple = _text(node, "multiValue").lower() in ("yes", "true")
    widget = "checkbox" if multiple and element.permissible_values else None
    try:
        return Item(
            element=element.ref,
            label=text if text and text != element.question else None,
            required=_text(node, "isMandatory").lower() in ("yes", "true"),
            field_note=_text(node, "instruction", "text") or None,
            widget=widget,
        )
    except ValidationError as exc:
        conversion.error(f"{place}: {exc}")
        return None


def _formcart_element(de, question, conversion, source, names, place) -> DataElement | None:
    public_id, version = _text(de, "publicID|publicId"), _text(de, "version")
    vd = _child(de, "valueDomain")
    raw_type = _text(vd, "datatypeName|datatype") if vd is not None else ""
    datatype = DATATYPES.get(raw_type.lower(), "text")
    if raw_type and raw_type.lower() not in DATATYPES:
        conversion.warn(
            f"{place}: datatype {raw_type!r} has no Capture equivalent; values are stored as text."
        )
    long_name = _text(de, "longName") or _text(de, "preferredName")
    name = _name_from(_text(de, "preferredName"), long_name)
    if name in names:
        name = f"{name}_{public_id}"
    names.add(name)
    fields: dict = {
        "public_id": public_id,
        "version": version,
        "name": name,
        "long_name": long_name[:255] or name,
        "question": _text(de, "preferredQuestionText") or _text(question, "questionText") or long_name,
        "definition": _text(de, "preferredDefinition"),
        "datatype": datatype,
        "unit": _text(vd, "unitOfMeasure") if vd is not None else "",
        "source": f"caDSR Form Builder XML {source} (CDE {public_id} v{version})",
    }
    fields.update(_value_domain(vd, datatype, place, conversion))
    values, seen = [], set()
    for vv in sorted(_children(question, "validValue"), key=_order):
        code = _text(vv, "value")
        if not code or code in seen:
            continue
        seen.add(code)
        value = {
            "code": code,
            "meaning": _text(vv, "meaningText") or _text(vv, "valueMeaning", "longName") or code,
        }
        concept = _concepts(_text(vv, "valueMeaning", "conceptCode|concepts") or _text(vv, "conceptCode"))
        if concept:
            value["concept"] = concept
        values.append(value)
    if values:
        fields["permissible_values"] = values
    try:
        return DataElement.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"{place}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}.")
        return None


def is_formcart(root: etree._Element) -> bool:
    return local(root.tag).lower() in ("forms", "form")
