"""CDISC ODM 1.3.2: the selection's metadata (events, forms, item groups, items, code lists,
units) and its clinical data, streamed subject by subject.

What must stay true: the file validates against the ODM 1.3.2 schema shipped in odmlib
(`validate()`), so nothing vendor-specific goes in (REDCap's ODM fails the schema because
of its extensions). Each ItemDef carries its data element as an Alias (caDSR public id and
version), each CodeListItem its NCI Thesaurus concept code (Alias context nci:ExtCodeID).
A checkbox item becomes one boolean ItemDef per option, as in REDCap. De-identification is
the builder's: identifier items are absent, dates shifted or turned into day offsets.
An event is `SE.<event>`; when arms share event names (REDCap's "Enrollment" in every arm), every
event is `SE.<arm>.<event>`, as REDCap's project XML names one event per arm.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.utils import timezone
from lxml import etree

from ..columns import Column, Missing
from ..convert import convert
from . import Writer
from .odm_measurements import OdmMeasurements

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ODM_TYPES = {
    "text": "text",
    "integer": "integer",
    "decimal": "float",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "boolean": "boolean",
    "file": "text",
}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def schema_path() -> Path:
    import odmlib

    return Path(odmlib.__file__).parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"


def validate(path: Path) -> list[str]:
    """Schema errors of an ODM file (empty when it is valid ODM 1.3.2)."""
    schema = etree.XMLSchema(etree.parse(str(schema_path())))
    document = etree.parse(str(path))
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def _text(parent, tag: str, text: str):
    node = etree.SubElement(parent, _q(tag))
    translated = etree.SubElement(node, _q("TranslatedText"))
    translated.set(XML_LANG, "en")
    translated.text = text
    return node


def _element_alias(parent, element) -> None:
    context = "caDSR" if element.public_id.isdigit() else "Capture"
    etree.SubElement(parent, _q("Alias"), Context=context, Name=f"{element.public_id}v{element.version}")


class OdmWriter(Writer):
    extension = "xml"

    def finish(self, codebook_rows) -> None:
        builder = self.builder
        self.path = self.workdir / "odm.xml"
        sel = builder.selection
        self.date_mode = builder.deid.date_mode
        self.event_oids, self.event_names = self._event_names(sel.events)
        study_oid = f"S.{builder.study.slug}"
        mdv_oid = "MDV.1"
        now = timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds")
        source = builder.measurements  # the measurement tables, when the export has them
        self.measured = OdmMeasurements(source.tables(), _q, _text) if source is not None else None
        with etree.xmlfile(str(self.path), encoding="utf-8") as xf:
            xf.write_declaration()
            with xf.element(
                _q("ODM"),
                nsmap={None: NS},
                FileOID=f"F.{builder.study.slug}.{timezone.now():%Y%m%dT%H%M%S}",
                FileType="Snapshot",
                Granularity="All",
                CreationDateTime=now,
                ODMVersion="1.3.2",
                SourceSystem="Capture",
                Originator="Capture dataset export",
            ):
                xf.write(self._study(study_oid, mdv_oid, sel))
                with xf.element(_q("ClinicalData"), StudyOID=study_oid, MetaDataVersionOID=mdv_oid):
                    for chunk, records in builder.record_chunks():
                        measured = self.measured.rows(source, chunk) if self.measured else None
                        for subject in chunk:
                            node = self._subject(subject, records.get(subject.pk, {}), sel)
                            if measured is not None:
                                self.measured.add_data(node, subject, measured)  # type: ignore[union-attr]  # set with `measured`
                            xf.write(node)
        self.files.append(self.path)

    # ---------------------------------------------------------------- metadata

    def _item_oids(self, item):
        if item.checkbox:
            return [(f"I.{item.form}.{item.name}___{code}", code) for code, _, _ in item.element.codes]
        return [(f"I.{item.form}.{item.name}", None)]

    def _groups(self, form: str, items):
        groups = {f"IG.{form}": ("No", [i for i in items if not i.repeating])}
        for item in items:
            if item.repeating:
                groups.setdefault(f"IG.{form}.{item.group}", ("Yes", []))[1].append(item)
        return {oid: g for oid, g in groups.items() if g[1]}

    def _study(self, study_oid, mdv_oid, sel):
        builder = self.builder
        study = etree.Element(_q("Study"), OID=study_oid)
        gv = etree.SubElement(study, _q("GlobalVariables"))
        etree.SubElement(gv, _q("StudyName")).text = builder.study.name
        etree.SubElement(gv, _q("StudyDescription")).text = builder.study.description or builder.study.name
        etree.SubElement(gv, _q("ProtocolName")).text = builder.study.schedule.ref
        self._units(study, sel)
        mdv = etree.SubElement(
            study,
            _q("MetaDataVersion"),
            OID=mdv_oid,
            Name=f"{builder.study.schedule.ref} export",
            Description="Forms as exported by Capture: " + ", ".join(sel.form_refs[f] for f in sel.forms),
        )
        repeating_forms = self._events(mdv, sel)
        self._form_defs(mdv, sel, repeating_forms)
        self._group_defs(mdv, sel)
        code_lists = []
        for items in sel.forms.values():
            for item in items:
                for item_oid, option in self._item_oids(item):
                    code_lists += self._item_def(mdv, item, item_oid, option)
        for oid, item in code_lists:
            self._code_list(mdv, oid, item)
        if self.measured is not None:
            self.measured.add_metadata(mdv)
        return study

    def _units(self, study, sel) -> None:
        units = sorted({i.element.unit for items in sel.forms.values() for i in items if i.element.unit})
        if units:
            basic = etree.SubElement(study, _q("BasicDefinitions"))
            for unit in units:
                mu = etree.SubElement(basic, _q("MeasurementUnit"), OID=self._unit_oid(unit), Name=unit)
                _text(mu, "Symbol", unit)

    def _event_names(self, events) -> tuple[dict[int, str], dict[int, str]]:
        """Each event's OID and Name, qualified by its arm when arms share event names: OIDs must
        be unique in the file, and one pattern for all events keeps them predictable."""
        names = [e.name for e in events]
        if len(set(names)) == len(names):
            return {e.pk: f"SE.{e.name}" for e in events}, {e.pk: e.title for e in events}
        oids = {e.pk: f"SE.{e.arm.name}.{e.name}" for e in events}
        return oids, {e.pk: f"{e.title} ({e.arm.title})" for e in events}

    def _events(self, mdv, sel) -> set[str]:
        """The protocol and the event definitions; returns the forms that repeat at some event."""
        protocol = etree.SubElement(mdv, _q("Protocol"))
        for n, event in enumerate(sel.events, start=1):
            etree.SubElement(
                protocol,
                _q("StudyEventRef"),
                StudyEventOID=self.event_oids[event.pk],
                OrderNumber=str(n),
                Mandatory="No",
            )
        repeating_forms = set()
        for event in sel.events:
            node = etree.SubElement(
                mdv,
                _q("StudyEventDef"),
                OID=self.event_oids[event.pk],
                Name=self.event_names[event.pk],
                Repeating="No",
                Type="Scheduled",
            )
            for n, ef in enumerate(sel.event_forms[event.pk], start=1):
                etree.SubElement(
                    node, _q("FormRef"), FormOID=f"F.{ef.form.name}", OrderNumber=str(n), Mandatory="No"
                )
                if ef.repeating:
                    repeating_forms.add(ef.form.name)
        return repeating_forms

    def _form_defs(self, mdv, sel, repeating_forms: set[str]) -> None:
        for form, items in sel.forms.items():
            title = next(i.form_title for i in items) if items else form
            node = etree.SubElement(
                mdv,
                _q("FormDef"),
                OID=f"F.{form}",
                Name=title,
                Repeating="Yes" if form in repeating_forms else "No",
            )
            for n, oid in enumerate(self._groups(form, items), start=1):
                etree.SubElement(
                    node, _q("ItemGroupRef"), ItemGroupOID=oid, OrderNumber=str(n), Mandatory="No"
                )

    def _group_defs(self, mdv, sel) -> None:
        for form, items in sel.forms.items():
            for oid, (repeating, members) in self._groups(form, items).items():
                node = etree.SubElement(mdv, _q("ItemGroupDef"), OID=oid, Name=oid[3:], Repeating=repeating)
                order = 1
                for item in members:
                    for item_oid, _ in self._item_oids(item):
                        etree.SubElement(
                            node, _q("ItemRef"), ItemOID=item_oid, OrderNumber=str(order), Mandatory="No"
                        )
                        order += 1

    def _unit_oid(self, unit: str) -> str:
        return "MU." + "".join(ch if ch.isalnum() else "_" for ch in unit)

    def _odm_type(self, item, option) -> str:
        if option is not None:
            return "boolean"
        if item.element.datatype in ("date", "datetime") and self.date_mode == "offset":
            return "integer"
        return ODM_TYPES.get(item.element.datatype, "text")

    def _item_def(self, mdv, item, oid, option) -> list:
        element = item.element
        name = f"{item.name}___{option}" if option else item.name
        node = etree.SubElement(mdv, _q("ItemDef"), OID=oid, Name=name, DataType=self._odm_type(item, option))
        question = item.label
        if option:
            question += ": " + {c: m for c, m, _ in element.codes}[option]
        if element.datatype in ("date", "datetime") and self.date_mode != "none":
            node.set(
                "Comment",
                "Days since enrolment" if self.date_mode == "offset" else "Date shifted per subject",
            )
        _text(node, "Question", question)
        if element.unit:
            etree.SubElement(node, _q("MeasurementUnitRef"), MeasurementUnitOID=self._unit_oid(element.unit))
        result = []
        if element.codes and option is None:
            cl_oid = f"CL.{item.form}.{item.name}"
            etree.SubElement(node, _q("CodeListRef"), CodeListOID=cl_oid)
            result.append((cl_oid, item))
        _element_alias(node, element)
        if option:
            concept = next((c for code, _, c in element.codes if code == option and c), "")
            if concept:
                etree.SubElement(node, _q("Alias"), Context="nci:ExtCodeID", Name=concept)
        return result

    def _code_list(self, mdv, oid, item) -> None:
        node = etree.SubElement(mdv, _q("CodeList"), OID=oid, Name=item.element.long_name, DataType="text")
        for code, meaning, concept in item.element.codes:
            cli = etree.SubElement(node, _q("CodeListItem"), CodedValue=code)
            _text(cli, "Decode", meaning)
            if concept:
                etree.SubElement(cli, _q("Alias"), Context="nci:ExtCodeID", Name=concept)

    # ---------------------------------------------------------------- data

    def _value(self, item, raw, subject, option) -> str | None:
        builder = self.builder
        if option is not None:
            datatype = "option"
        else:
            datatype, _, _ = builder.planner.datatype(item)
        col = Column(name=item.name, label="", datatype=datatype, source="record", item=item, option=option)
        value = convert(col, raw, subject, builder.missing_codes, builder.deid)
        if value is None:
            return None
        if isinstance(value, Missing):
            return value.code
        if datatype == "multi":
            return None  # checkboxes are written per option
        if isinstance(value, dt.datetime):
            return value.isoformat(timespec="seconds")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)

    def _item_data(self, parent, items, data, subject) -> bool:
        wrote = False
        for item in items:
            raw = data.get(item.name)
            for oid, option in self._item_oids(item):
                value = self._value(item, raw, subject, option)
                if value is not None:
                    etree.SubElement(parent, _q("ItemData"), ItemOID=oid, Value=value)
                    wrote = True
        return wrote

    def _subject(self, subject, recs, sel):
        builder = self.builder
        node = etree.Element(_q("SubjectData"), SubjectKey=builder.deid.subject_key(subject.subject_id))
        for event in sel.events:
            event_node = None
            for ef in sel.event_forms[event.pk]:
                form = ef.form.name
                keys = sorted(k for k in recs if k[0] == event.pk and k[1] == form)
                for key in keys:
                    _status, data = recs[key]
                    if event_node is None:
                        event_node = etree.SubElement(
                            node, _q("StudyEventData"), StudyEventOID=self.event_oids[event.pk]
                        )
                    form_node = etree.SubElement(event_node, _q("FormData"), FormOID=f"F.{form}")
                    if ef.repeating:
                        form_node.set("FormRepeatKey", str(key[2]))
                    for oid, (repeating, members) in self._groups(form, sel.forms[form]).items():
                        if repeating == "No":
                            group = etree.SubElement(form_node, _q("ItemGroupData"), ItemGroupOID=oid)
                            if not self._item_data(group, members, data, subject):
                                form_node.remove(group)
                            continue
                        group_name = members[0].group
                        for n, row in enumerate(data.get(group_name) or [], start=1):
                            group = etree.SubElement(
                                form_node, _q("ItemGroupData"), ItemGroupOID=oid, ItemGroupRepeatKey=str(n)
                            )
                            if not self._item_data(group, members, row, subject):
                                form_node.remove(group)
        return node
