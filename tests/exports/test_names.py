"""Column names: full in CSV, XLSX and Parquet; shortened only where Stata, SPSS and SAS must.

The limits are measured against the installed pyreadstat here, so a new pyreadstat that changes
them fails this file rather than an export in production."""

from __future__ import annotations

import pandas as pd
import pyreadstat
import pytest

from capture.exports.columns import Column
from capture.exports.naming import short_names

WRITE = {
    "dta": lambda frame, path, **kw: pyreadstat.write_dta(frame, path, version=15, **kw),
    "sav": pyreadstat.write_sav,
    "xpt": lambda frame, path, **kw: pyreadstat.write_xport(frame, path, file_format_version=8, **kw),
}
READ = {"dta": pyreadstat.read_dta, "sav": pyreadstat.read_sav, "xpt": pyreadstat.read_xport}


def _write(tmp_path, fmt, name, labelled=False):
    frame = pd.DataFrame({name: [1.0, 0.0]})
    path = str(tmp_path / f"x.{fmt}")
    extra = {"variable_value_labels": {name: {1.0: "Yes", 0.0: "No"}}} if labelled else {}
    WRITE[fmt](frame, path, **extra)
    back, _ = READ[fmt](path)
    return list(back.columns)


@pytest.mark.parametrize(
    ("fmt", "labelled", "limit"),
    [
        ("dta", False, 32),
        ("dta", True, 31),  # the value-label set is named <name>0
        ("sav", False, 64),
        ("sav", True, 64),
        ("xpt", False, 32),
    ],
)
def test_pyreadstat_takes_a_name_at_each_limit_and_refuses_one_byte_more(tmp_path, fmt, labelled, limit):
    fits = "v" * limit
    assert _write(tmp_path, fmt, fits, labelled) == [fits]
    with pytest.raises(pyreadstat.ReadstatError, match="too long"):
        _write(tmp_path, fmt, fits + "v", labelled)


def test_stata_refuses_reserved_words_that_spss_and_sas_take(tmp_path):
    with pytest.raises(pyreadstat.ReadstatError, match="reserved"):
        _write(tmp_path, "dta", "long")
    assert _write(tmp_path, "sav", "long") == ["long"]


def _col(name, datatype="code", source="record", **extra):
    codes = (("1", "Yes", ""), ("0", "No", "")) if datatype == "code" else ()
    return Column(name, f"Label of {name}", datatype, source, codes=codes, **extra)


def test_names_that_fit_are_kept_and_the_others_shortened_unique_and_stable():
    # The TumorBank REDCap project's longest field (33 characters) and the shipped treatment form's
    # two instances, whose 32-character cut used to be the same but for a hash.
    columns = [
        _col("subject_id", "text", "subject", key="subject_id"),
        _col("days_to_last_known_disease_status", "text"),
        _col("treatment_start_date_on_treatment_i1", "date"),
        _col("treatment_start_date_on_treatment_i2", "date"),
        _col("age", "integer"),
    ]
    for fmt in ("dta", "xpt"):
        names = short_names(columns, fmt)
        assert names[0] == "subject_id" and names[4] == "age"
        assert all(len(n) <= 32 for n in names) and len(set(names)) == 5
        assert names[1].startswith("days_to_last_known_disease")
        assert names[2].startswith("treatment_start_date_on_tr") and names[2] != names[3]
        assert short_names(columns, fmt) == names  # the same columns, the same names
    assert short_names(columns, "sav") == [c.name for c in columns]  # SPSS: 64, all fit


def test_a_labelled_stata_variable_leaves_room_for_its_label_set_number():
    # Twelve labelled variables of 31 characters: sets 0-9 fit (31 + 1 digit = 32); from the 11th on
    # the set number has two digits, so the name must be at most 30.
    columns = [_col(f"imaging_body_region___option{n:02d}x", "option") for n in range(12)]
    names = short_names(columns, "dta")
    assert names[:10] == [c.name for c in columns[:10]]
    assert all(len(n) <= 30 and n.startswith("imaging_body_region___op") for n in names[10:])
    assert short_names(columns, "xpt") == [c.name for c in columns]  # no label sets in SAS


def test_a_reserved_word_gets_a_prefix_in_the_format_that_reserves_it():
    columns = [_col("long", "decimal"), _col("to", "integer")]
    assert short_names(columns, "dta") == ["v_long", "to"]
    assert short_names(columns, "sav") == ["long", "v_to"]
    assert short_names(columns, "xpt") == ["long", "to"]
