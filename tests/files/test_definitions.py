"""A REDCap dictionary's `file` field becomes an item of datatype file (an upload on the entry
page, `file` again in the dictionary the REDCap API gives back)."""

from __future__ import annotations

import pytest

from capture.definitions.converters import redcap

pytestmark = pytest.mark.django_db

DICTIONARY = (
    '"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    '"Choices, Calculations, OR Slider Labels","Field Note"\n'
    "record_id,consent,,text,Record ID,,\n"
    'signed_form,consent,,file,"Signed consent form",,"Scan or photo"\n'
)


def test_a_redcap_file_field_becomes_a_file_item():
    conversion = redcap.read_dictionary(DICTIONARY, project="upload_test")
    assert not conversion.errors, conversion.errors
    element = next(e for e in conversion.elements if e.name == "signed_form")
    assert element.datatype == "file"
    item = next(i for section in conversion.forms[0].sections for i in section.items)
    assert item.widget == "file"
