"""An export column names its field; a `<form>_complete` column has none and says so."""

from __future__ import annotations

import pytest

from capture.api.catalog import Field
from capture.api.redcap.project import Column
from capture.definitions.models import DataElement


def _weight() -> Field:
    return Field(
        name="weight_kg",
        label="Weight (kg)",
        datatype="decimal",
        identifier=False,
        codes=(),
        widget="number",
        group=None,
        max_repeats=None,
        matrix_group=None,
        section="",
        item={},
        element=DataElement(),
    )


def test_a_data_column_gives_its_field():
    weight = _weight()
    column = Column(name="weight_kg", form="vitals", field=weight, field_name="weight_kg")
    assert column.item is weight
    assert not column.is_complete


def test_a_status_column_has_no_field_to_give():
    column = Column(name="vitals_complete", form="vitals", field=None)
    assert column.is_complete
    with pytest.raises(ValueError, match="vitals_complete is a form status column"):
        _ = column.item
