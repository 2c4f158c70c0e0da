"""What the ODM reader and writer share: namespaces, datatype maps, OIDs and lookups in the tree."""

from __future__ import annotations

import re

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


def _oid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)


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


def _text_plain(node) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""
