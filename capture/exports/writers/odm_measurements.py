"""The measurement tables of an export (capture/exports/measurements.py) in CDISC ODM 1.3.2.

ODM holds data in forms of study events, so the three tables become three forms of one
unscheduled study event `SE.IMAGING_RESULTS`, each with one repeating item group whose items are
the table's columns (the subject is the SubjectData; event, day and date are items, as in the
tables). Coded columns get a CodeList whose items carry their concept as an Alias: the coding
scheme as the Context (SCT, DCM, UCUM; NCI Thesaurus as `nci:ExtCodeID`, as the form items' code
lists do). The file still validates against the ODM 1.3.2 schema: the definitions are inserted in
the order the schema wants them.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

EVENT_OID = "SE.IMAGING_RESULTS"
# The order of a MetaDataVersion's children in the ODM 1.3.2 schema.
ORDER = ["Include", "Protocol", "StudyEventDef", "FormDef", "ItemGroupDef", "ItemDef", "CodeList"]
TYPES = {"integer": "integer", "days": "integer", "boolean": "integer", "decimal": "float", "date": "date"}


def _local(node) -> str:
    return etree.QName(node).localname


def _insert(mdv, node) -> None:
    """Put `node` after every sibling the schema wants before it."""
    rank = ORDER.index(_local(node))
    for child in mdv:
        if _local(child) in ORDER and ORDER.index(_local(child)) > rank:
            child.addprevious(node)
            return
    mdv.append(node)


def _items(table) -> list:
    return [col for col in table.columns if col.source != "subject"]


class OdmMeasurements:
    """Metadata and data of the measurement tables, for `OdmWriter` (`q`: its tag maker, `text`: its
    TranslatedText helper)."""

    def __init__(self, tables: list, q, text):
        self.tables = tables
        self.q = q
        self.text = text

    def add_metadata(self, mdv) -> None:
        q = self.q
        protocol = mdv.find(q("Protocol"))
        order = len(protocol) + 1
        etree.SubElement(
            protocol, q("StudyEventRef"), StudyEventOID=EVENT_OID, OrderNumber=str(order), Mandatory="No"
        )
        event = etree.Element(
            q("StudyEventDef"), OID=EVENT_OID, Name="Imaging results", Repeating="No", Type="Unscheduled"
        )
        _insert(mdv, event)
        for n, table in enumerate(self.tables, start=1):
            oid = table.name.upper()
            etree.SubElement(event, q("FormRef"), FormOID=f"F.IMG.{oid}", OrderNumber=str(n), Mandatory="No")
            form = etree.Element(q("FormDef"), OID=f"F.IMG.{oid}", Name=table.title, Repeating="No")
            etree.SubElement(
                form, q("ItemGroupRef"), ItemGroupOID=f"IG.IMG.{oid}", OrderNumber="1", Mandatory="No"
            )
            _insert(mdv, form)
            group = etree.Element(q("ItemGroupDef"), OID=f"IG.IMG.{oid}", Name=table.name, Repeating="Yes")
            for i, col in enumerate(_items(table), start=1):
                item_oid = f"I.IMG.{oid}.{col.name}"
                etree.SubElement(group, q("ItemRef"), ItemOID=item_oid, OrderNumber=str(i), Mandatory="No")
                self._item_def(mdv, item_oid, col, oid)
            _insert(mdv, group)

    def _item_def(self, mdv, oid: str, col, table_oid: str) -> None:
        q = self.q
        node = etree.Element(q("ItemDef"), OID=oid, Name=col.name, DataType=TYPES.get(col.datatype, "text"))
        if col.note:
            node.set("Comment", col.note)
        self.text(node, "Question", col.label)
        if col.datatype == "code" and col.codes:
            code_list = f"CL.IMG.{table_oid}.{col.name}"
            etree.SubElement(node, q("CodeListRef"), CodeListOID=code_list)
            self._code_list(mdv, code_list, col)
        _insert(mdv, node)

    def _code_list(self, mdv, oid: str, col) -> None:
        q = self.q
        node = etree.Element(q("CodeList"), OID=oid, Name=col.label, DataType="text")
        for code, meaning, concept in col.codes:
            item = etree.SubElement(node, q("CodeListItem"), CodedValue=code)
            self.text(item, "Decode", meaning)
            if concept:
                scheme, _, value = concept.partition(":")
                context = "nci:ExtCodeID" if scheme == "NCIt" else scheme
                etree.SubElement(item, q("Alias"), Context=context, Name=value)
        _insert(mdv, node)

    def rows(self, source, chunk) -> list[dict[int, list[dict]]]:
        """Each table's rows of a chunk of subjects, by subject pk (`source`: MeasurementTables)."""
        return [source._measurement_rows(chunk), source._response_rows(chunk), source._best_rows(chunk)]

    def add_data(self, subject_node, subject, rows: list[dict[int, list[dict]]]) -> None:
        q = self.q
        event = None
        for table, by_subject in zip(self.tables, rows, strict=True):
            mine = by_subject.get(subject.pk, [])
            if not mine:
                continue
            if event is None:
                event = etree.SubElement(subject_node, q("StudyEventData"), StudyEventOID=EVENT_OID)
            oid = table.name.upper()
            form = etree.SubElement(event, q("FormData"), FormOID=f"F.IMG.{oid}")
            for n, row in enumerate(mine, start=1):
                group = etree.SubElement(
                    form, q("ItemGroupData"), ItemGroupOID=f"IG.IMG.{oid}", ItemGroupRepeatKey=str(n)
                )
                for col in _items(table):
                    value = row.get(col.key)
                    if value is not None:
                        etree.SubElement(
                            group, q("ItemData"), ItemOID=f"I.IMG.{oid}.{col.name}", Value=_text(value)
                        )


def _text(value) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
