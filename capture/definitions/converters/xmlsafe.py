"""Parse XML from uploads without trusting it.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document that
declares a DOCTYPE at all is refused: caDSR, Form Builder and ODM files never need one, and a DOCTYPE
is how entity-expansion ("billion laughs") and external-entity (XXE) attacks arrive.
"""

from __future__ import annotations

import re

from lxml import etree

# A DOCTYPE may only come before the root element; look in the prolog, not in text content.
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_PROLOG_LIMIT = 64 * 1024


class UnsafeXMLError(ValueError):
    pass


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes | str) -> etree._Element:
    """The root element of `data`; raise UnsafeXMLError for a DOCTYPE or entity, ValueError for bad XML."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    root_at = _first_element(raw)
    if _DOCTYPE.search(raw[: root_at if root_at >= 0 else _PROLOG_LIMIT]):
        raise UnsafeXMLError(
            "the file declares a DOCTYPE (a DTD with entities), which Capture refuses: entities are how "
            "entity-expansion and external-entity attacks work. Fix: remove the <!DOCTYPE ...> declaration; "
            "caDSR, Form Builder and ODM files do not need one."
        )
    try:
        root = etree.fromstring(raw, parser=_parser())  # noqa: S320 - hardened parser above, DOCTYPE refused
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}. Fix: upload the file as exported.") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or any(isinstance(node, etree._Entity) for node in root.iter()):
        raise UnsafeXMLError(
            "the file uses XML entities, which Capture refuses. Fix: write the text out in full."
        )
    return root


def _first_element(raw: bytes) -> int:
    """Offset of the root element's '<', skipping the XML declaration, comments and DOCTYPE."""
    for match in re.finditer(rb"<([^?!])", raw[:_PROLOG_LIMIT]):
        return match.start()
    return -1


def local(tag) -> str:
    """An element's tag without its namespace."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""
