"""ODM in: `read_odm` tells a REDCap project XML from CDISC ODM metadata and reads either."""

from __future__ import annotations

import re

from lxml import etree

from ...schema import NAME_RE
from .. import Conversion
from ..xmlsafe import local, parse
from .cdisc import _read_cdisc
from .common import ODM_NS, REDCAP_NS, _find, _text_plain
from .redcap_xml import _read_redcap


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
