"""The optional interop keys leave every existing definition exactly as it was."""

from __future__ import annotations

import json

from capture.definitions.models import DataElement, FormDefinition
from capture.definitions.schema import INTEROP_DEFAULTS


def test_definitions_without_interop_keys_store_and_hash_as_before(basic_definitions):
    stored = json.dumps(
        [e.spec for e in DataElement.objects.all()] + [f.spec for f in FormDefinition.objects.all()]
    )
    for key in INTEROP_DEFAULTS:
        assert f'"{key}"' not in stored, (
            f"{key!r} at its default must not enter the stored spec (or its hash)"
        )


def test_interop_keys_are_validated(db):
    import pytest
    from pydantic import ValidationError

    from capture.definitions.schema import DataElement as Spec
    from capture.definitions.schema import Item

    with pytest.raises(ValidationError, match="display_format only applies"):
        Spec(
            public_id="capture.x",
            version="1",
            name="x",
            long_name="X",
            question="X",
            datatype="text",
            display_format="dmy",
        )
    with pytest.raises(ValidationError, match="need widget: slider"):
        Item(element="capture.x@1", slider_labels=["low", "high"])
    with pytest.raises(ValidationError, match="NCI Thesaurus"):
        Spec(
            public_id="capture.x",
            version="1",
            name="x",
            long_name="X",
            question="X",
            datatype="text",
            concepts=["X1"],
        )
