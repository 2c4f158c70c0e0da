"""ODM in: `read_odm` tells a REDCap project XML from CDISC ODM metadata and reads either.

Every file is first checked against the ODM 1.3.2 schema shipped in odmlib, with elements and
attributes of other namespaces (vendor extensions such as REDCap's `redcap:`) set aside. A CDISC
ODM file that fails it is refused, its errors named by line; REDCap's own project XML fails it in
known ways (CodeList DataType="boolean", empty ItemGroupDef names), so there the schema errors are
warnings and the file is read all the same.
"""

from __future__ import annotations

import copy
import re

from lxml import etree

from ...schema import NAME_RE
from .. import Conversion, Problem
from ..xmlsafe import local, parse
from .cdisc import _read_cdisc
from .common import ODM_NS, REDCAP_NS, _find, _text_plain
from .redcap_xml import _read_redcap
from .write import _schema

# Namespaces the ODM 1.3.2 schema itself uses; anything else is a vendor extension.
SCHEMA_NAMESPACES = {
    ODM_NS,
    "http://www.w3.org/XML/1998/namespace",
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/09/xmldsig#",
}
SCHEMA_ERRORS_SHOWN = 10


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
        _check_schema(conversion, root, severity="warning")
        _read_redcap(conversion, mdv, project)
    else:
        _check_schema(conversion, root, severity="error")
        _read_cdisc(conversion, mdv, project, source)
    conversion.cross_check()
    return conversion


def _without_extensions(root: etree._Element) -> etree._Element:
    """A copy of the document without elements and attributes of vendor namespaces (lines kept)."""
    root = copy.deepcopy(root)
    for node in list(root.iter()):
        if not isinstance(node.tag, str):
            continue
        if etree.QName(node).namespace not in SCHEMA_NAMESPACES:
            if node.getparent() is not None:
                node.getparent().remove(node)
            continue
        for key in [k for k in node.attrib if k.startswith("{")]:
            if etree.QName(key).namespace not in SCHEMA_NAMESPACES:
                del node.attrib[key]
    return root


def _check_schema(conversion: Conversion, root: etree._Element, *, severity: str) -> None:
    """Report the first schema errors by line: errors for CDISC ODM, warnings for REDCap's XML."""
    schema = _schema()
    if schema.validate(_without_extensions(root)):
        return
    errors = list(schema.error_log)
    fix = (
        "REDCap writes its project XML so; it is read all the same."
        if severity == "warning"
        else "Fix: correct the file, or export it again from the system that made it."
    )
    for error in errors[:SCHEMA_ERRORS_SHOWN]:
        message = error.message.replace(f"{{{ODM_NS}}}", "")
        conversion.problems.append(
            Problem(f"not valid against the ODM 1.3.2 schema: {message} {fix}", severity, line=error.line)
        )
    if len(errors) > SCHEMA_ERRORS_SHOWN:
        conversion.problems.append(
            Problem(
                f"{len(errors) - SCHEMA_ERRORS_SHOWN} more ODM 1.3.2 schema error(s) not shown.", severity
            )
        )
