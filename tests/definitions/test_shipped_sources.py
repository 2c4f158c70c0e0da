"""The shipped definitions (crf_definitions/) parse, and what they claim from caDSR is really there.

A numeric public id, a GDC-derived value list or an NCI Thesaurus concept code must come from a
source file in ../shared/data/cadsr/: the GDC dictionary (`gdc/_terms.yaml` for ids, the node files
such as `gdc/diagnosis.yaml` for value lists) or a caDSR CDE XML export (`*.xml`). Each element says
which in `source:`, for example

    source: "gdc _terms.yaml#gender; values: gdc demographic.yaml#gender"
    source: "caDSR XML cde-sample-2544997.xml (...)"

These tests need no database. The source checks need ../shared: they skip without it, and fail in CI.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - reads the registry's own files, not user input
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

import yaml

from capture.definitions.schema import DataElement, ElementFile, FormFile, ScheduleFile
from tests.requirements import need_shared

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = REPO / "crf_definitions"
SHARED = Path(__file__).resolve().parents[3] / "shared"
CADSR = SHARED / "data" / "cadsr"
GDC = CADSR / "gdc"

KINDS = {"elements": ElementFile, "form": FormFile, "schedule": ScheduleFile}

TERM_REF = re.compile(r"_terms\.yaml#/?(\w+)")
NODE_REF = re.compile(r"\b(?!_terms\b)(\w+)\.yaml#/?(\w+)")
XML_REF = re.compile(r"([\w.\-]+\.xml)\b")


# ---------------------------------------------------------------------------- shipped files


def _definition_files() -> list[Path]:
    return sorted(p for p in DEFINITIONS.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _parse(path: Path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    kinds = [k for k in KINDS if isinstance(raw, dict) and k in raw]
    assert len(kinds) == 1, f"{path}: starts with none or several of {', '.join(KINDS)}"
    return KINDS[kinds[0]].model_validate(raw)


def shipped_elements() -> list[DataElement]:
    return [
        el for path in _definition_files() if isinstance(m := _parse(path), ElementFile) for el in m.elements
    ]


def _require_shared() -> None:
    need_shared(CADSR)


def _version(value: object) -> Decimal | None:
    # caDSR writes a version as "1" in its XML and as 1.0 in the GDC dictionary; they are one version.
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


# ---------------------------------------------------------------------------- the sources


@cache
def gdc_terms(gdc_dir: Path = GDC) -> dict[str, tuple[str, Decimal]]:
    """GDC term -> (caDSR public id, version), for terms whose source is caDSR and both are given."""
    terms = yaml.safe_load((gdc_dir / "_terms.yaml").read_text(encoding="utf-8"))
    found = {}
    for key, entry in terms.items():
        term_def = entry.get("termDef") if isinstance(entry, dict) else None
        if not term_def or term_def.get("source") != "caDSR":
            continue
        cde_id, cde_version = term_def.get("cde_id"), _version(term_def.get("cde_version"))
        if cde_id is None or cde_version is None:
            continue
        found[key] = (str(cde_id), cde_version)
    return found


@cache
def gdc_node(name: str, gdc_dir: Path = GDC) -> dict | None:
    path = gdc_dir / f"{name}.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8")).get("properties", {})


@cache
def cadsr_xml(name: str, cadsr_dir: Path = CADSR) -> dict | None:
    """One caDSR XML export: its id, version and permissible values (code -> set of concept codes)."""
    path = cadsr_dir / name
    if not path.is_file():
        return None
    root = ET.parse(path).getroot()  # noqa: S314 - a registry export shipped beside the project
    values: dict[str, set[frozenset[str]]] = {}
    for pv in root.iter("PermissibleValues_ITEM"):
        code = (pv.findtext("VALIDVALUE") or "").strip()
        concepts = frozenset(c for c in re.split(r"[,:\s]+", pv.findtext("MEANINGCONCEPTS") or "") if c)
        values.setdefault(code, set()).add(concepts)
    return {
        "public_id": (root.findtext("PUBLICID") or "").strip(),
        "version": _version(root.findtext("VERSION")),
        "values": values,
    }


def all_xml_pairs(cadsr_dir: Path = CADSR) -> set[tuple[str, Decimal]]:
    pairs = set()
    for path in sorted(cadsr_dir.glob("*.xml")):
        xml = cadsr_xml(path.name, cadsr_dir)
        if xml and xml["public_id"] and xml["version"] is not None:
            pairs.add((xml["public_id"], xml["version"]))
    return pairs


# ---------------------------------------------------------------------------- the checks


def id_problems(elements: list[DataElement], cadsr_dir: Path = CADSR) -> list[str]:
    """Every numeric public id, with its version, is one the source it names gives."""
    terms = gdc_terms(cadsr_dir / "gdc")
    registered = set(terms.values()) | all_xml_pairs(cadsr_dir)
    problems = []
    for el in elements:
        if not el.public_id.isdigit():
            continue
        pair = (el.public_id, _version(el.version))
        if pair not in registered:
            problems.append(
                f"{el.ref} ({el.name}): no GDC term or caDSR XML in {cadsr_dir} gives this id and version"
            )
        named_term = TERM_REF.search(el.source)
        named_xml = XML_REF.search(el.source)
        if not named_term and not named_xml:
            problems.append(
                f"{el.ref} ({el.name}): source {el.source!r} names neither a _terms.yaml term nor an XML"
            )
        if named_term:
            given = terms.get(named_term.group(1))
            if given != pair:
                problems.append(
                    f"{el.ref} ({el.name}): _terms.yaml#{named_term.group(1)} gives {given}, not {pair}"
                )
        if named_xml:
            xml = cadsr_xml(named_xml.group(1), cadsr_dir)
            if xml is None:
                problems.append(f"{el.ref} ({el.name}): {named_xml.group(1)} is not in {cadsr_dir}")
            elif (xml["public_id"], xml["version"]) != pair:
                problems.append(
                    f"{el.ref} ({el.name}): {named_xml.group(1)} is {xml['public_id']} version {xml['version']}"
                )
    return problems


def value_problems(elements: list[DataElement], cadsr_dir: Path = CADSR) -> list[str]:
    """Codes of an element whose source names a GDC node property are that property's enum values;
    a caDSR element's value list comes from a named GDC enum or XML value domain, never from nowhere."""
    problems = []
    for el in elements:
        codes = [pv.code for pv in el.permissible_values]
        from_a_source = False
        for node_name, prop in NODE_REF.findall(el.source):
            node = gdc_node(node_name, cadsr_dir / "gdc")
            if node is None:
                problems.append(
                    f"{el.ref} ({el.name}): source names {node_name}.yaml, not a GDC node file here"
                )
                continue
            if prop not in node:
                problems.append(f"{el.ref} ({el.name}): {node_name}.yaml has no property {prop!r}")
                continue
            enum = node[prop].get("enum")
            if not codes:
                continue
            if enum is None:
                problems.append(f"{el.ref} ({el.name}): has codes, but {node_name}.yaml#{prop} has no enum")
                continue
            from_a_source = True
            allowed = {str(v) for v in enum}
            stray = [c for c in codes if c not in allowed]
            if stray:
                problems.append(f"{el.ref} ({el.name}): codes {stray} are not in {node_name}.yaml#{prop}")
        named_xml = XML_REF.search(el.source)
        if codes and named_xml and (xml := cadsr_xml(named_xml.group(1), cadsr_dir)):
            from_a_source = True
            stray = [c for c in codes if c not in xml["values"]]
            if stray:
                problems.append(f"{el.ref} ({el.name}): codes {stray} are not values of {named_xml.group(1)}")
        if codes and el.public_id.isdigit() and not from_a_source:
            problems.append(
                f"{el.ref} ({el.name}): a caDSR element whose values come from no GDC enum or caDSR XML "
                f"(source {el.source!r})"
            )
    return problems


def concept_problems(elements: list[DataElement], cadsr_dir: Path = CADSR) -> list[str]:
    """A concept code appears only where the caDSR XML the element names gives it for that value."""
    problems = []
    for el in elements:
        with_concepts = [pv for pv in el.permissible_values if pv.concept]
        if not with_concepts:
            continue
        named_xml = XML_REF.search(el.source)
        xml = cadsr_xml(named_xml.group(1), cadsr_dir) if named_xml else None
        if xml is None or not el.public_id.isdigit():
            problems.append(
                f"{el.ref} ({el.name}): concept codes need a caDSR element whose source names an XML "
                f"export in {cadsr_dir} (source {el.source!r})"
            )
            continue
        for pv in with_concepts:
            wanted = frozenset(pv.concept.split(":"))
            if wanted not in xml["values"].get(pv.code, set()):
                problems.append(
                    f"{el.ref} ({el.name}): {named_xml.group(1)} does not give concept {pv.concept} "
                    f"for value {pv.code!r}"
                )
    return problems


# ---------------------------------------------------------------------------- the tests


def test_every_shipped_file_parses():
    files = _definition_files()
    assert files, f"no definition files under {DEFINITIONS}"
    kinds = {type(_parse(path)) for path in files}
    assert kinds == {ElementFile, FormFile, ScheduleFile}


def test_every_caDSR_id_appears_in_a_shipped_source():  # noqa: N802 - caDSR is a name
    _require_shared()
    elements = shipped_elements()
    assert any(el.public_id.isdigit() for el in elements), "expected some caDSR elements"
    assert id_problems(elements) == []


def test_permissible_values_of_gdc_elements_come_from_the_gdc_enum():
    _require_shared()
    elements = shipped_elements()
    assert any(NODE_REF.search(el.source) and el.permissible_values for el in elements)
    assert value_problems(elements) == []


def test_concept_codes_only_on_elements_from_caDSR_xml():  # noqa: N802 - caDSR is a name
    _require_shared()
    assert concept_problems(shipped_elements()) == []
