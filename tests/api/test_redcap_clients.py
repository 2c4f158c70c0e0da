"""REDCapR's and redcapAPI's exact requests where PyCap has no method or sends otherwise: a delete
without returnFormat (REDCapR reads the answer with as.integer), and XML record import."""

from __future__ import annotations

import pytest

from capture.records.models import FormRecord

URL = "/redcap/api/"


@pytest.mark.redcap("record", "delete")
def test_redcapr_delete_gets_a_bare_integer(client, redcap_tokens, records, subjects):
    # REDCapR's redcap_delete: token, content, action, records[i] (and arm when asked); no returnFormat.
    body = {"token": redcap_tokens["admin"], "content": "record", "action": "delete", "records[0]": "B-0001"}
    response = client.post(URL, body)
    assert response.status_code == 200
    assert response.content == b"1"  # REDCap's answer, whatever returnFormat says
    assert not FormRecord.objects.filter(subject=subjects["b"]).exists()
    for fmt, instrument in (("json", "lesions"), ("csv", "demographics")):
        again = client.post(
            URL, {**body, "records[0]": "A-0001", "instrument": instrument, "returnFormat": fmt}
        )
        assert again.content == b"1", fmt


@pytest.mark.redcap("record", "import")
def test_flat_xml_import_is_read_as_redcap_writes_it(client, redcap_tokens, records, subjects):
    data = """<?xml version="1.0" encoding="UTF-8" ?>
<records>
   <item>
      <record_id><![CDATA[B-0001]]></record_id>
      <redcap_event_name><![CDATA[baseline_arm_1]]></redcap_event_name>
      <age><![CDATA[64]]></age>
      <initials>Q&amp;R</initials>
   </item>
</records>"""
    body = {"token": redcap_tokens["admin"], "content": "record", "format": "xml", "data": data}
    response = client.post(URL, {**body, "returnFormat": "json"})
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 1}
    stored = FormRecord.objects.get(subject=subjects["b"], form_name="demographics").data
    assert (stored["age"], stored["initials"]) == (64, "Q&R")


@pytest.mark.redcap("record", "import")
def test_eav_xml_import_and_bad_xml(client, redcap_tokens, records, subjects):
    data = (
        "<records><item><record>B-0001</record><redcap_event_name>baseline_arm_1</redcap_event_name>"
        "<field_name>age</field_name><value>65</value></item></records>"
    )
    body = {
        "token": redcap_tokens["admin"],
        "content": "record",
        "format": "xml",
        "type": "eav",
        "data": data,
    }
    assert client.post(URL, {**body, "returnFormat": "json"}).json() == {"count": 1}
    assert FormRecord.objects.get(subject=subjects["b"], form_name="demographics").data["age"] == 65
    entity = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "64">]><records><item><age>&x;</age></item></records>'
    )
    for bad in ("<records><item>", entity):
        response = client.post(URL, {**body, "type": "flat", "data": bad, "returnFormat": "json"})
        assert response.status_code == 400 and "XML" in response.json()["error"]
