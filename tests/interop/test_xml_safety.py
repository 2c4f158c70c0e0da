"""Uploaded XML cannot expand entities or read files: both attacks are refused with a clear message."""

from __future__ import annotations

import pytest

from capture.definitions.converters import cadsr, odm

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<DataElement><PUBLICID>2001826</PUBLICID><VERSION>3</VERSION><LONGNAME>&lol4;</LONGNAME></DataElement>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE ODM [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><Study OID="S"><MetaDataVersion OID="M" Name="&secret;"/></Study></ODM>
"""


@pytest.mark.parametrize(
    "read",
    [
        lambda data: cadsr.read_cde(data, source="x.xml"),
        lambda data: cadsr.read_formcart(data, source="x.xml"),
        lambda data: odm.read_odm(data, project="x", source="x.xml"),
    ],
)
@pytest.mark.parametrize(
    "attack", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entity-expansion", "external-entity"]
)
def test_entity_attacks_are_refused_before_anything_is_read(db, read, attack):
    conversion = read(attack)
    assert conversion.elements == [] and conversion.forms == []
    (problem,) = conversion.errors
    assert "DOCTYPE" in problem.message and "Fix:" in problem.message
    assert "root:" not in str(problem), "no file content may leak into the message"


def test_an_entity_reference_without_a_doctype_is_not_expanded(db):
    conversion = cadsr.read_cde(b"<DataElement><PUBLICID>&x;</PUBLICID></DataElement>", source="x.xml")
    assert conversion.errors and conversion.elements == []


def test_malformed_xml_is_reported_not_raised(db):
    conversion = odm.read_odm(b"<ODM><Study>", project="x", source="x.xml")
    assert conversion.errors and "well-formed" in conversion.errors[0].message
