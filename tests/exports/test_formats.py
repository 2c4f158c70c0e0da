"""Each format read back with the tools statisticians use: same values, same labels."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
from lxml import etree

from capture.exports.writers.odm import NS, validate

ALL = ["csv", "xlsx", "parquet", "dta", "sav", "xpt", "odm"]


def _by_subject(frame, subject_id):
    return frame[frame["subject_id"] == subject_id].iloc[0]


def test_it_writes_every_format_with_codebook_and_manifest(records, personas, study, run_export):
    _, manifest, folder = run_export(personas["statistician"], study, formats=ALL)
    names = {p.name for p in folder.iterdir()}
    assert {
        "dataset.csv",
        "dataset.xlsx",
        "dataset.parquet",
        "dataset.dta",
        "dataset.sav",
        "dataset.xpt",
        "odm.xml",
        "codebook.csv",
        "manifest.json",
    } <= names
    assert manifest["odm_schema_valid"] is True


def test_it_round_trips_csv_through_pandas(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"])
    frame = pd.read_csv(folder / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    a = _by_subject(frame, "A-0001")
    assert a["sex_baseline"] == "1"
    assert a["age_baseline"] == "54"
    assert a["weight_baseline"] == "70.5"
    assert (a["symptoms___pain_baseline"], a["symptoms___fatigue_baseline"]) == ("1", "0")
    assert a["lesion_diameter_r2_baseline"] == "8.0"
    assert a["visit_date_week_8_i2"]  # second instance of a repeating form, as suffixed columns
    b = _by_subject(frame, "B-0001")
    assert b["age_baseline"] == "UNK"  # a missing-data code stays distinct from a blank
    assert b["weight_baseline"] == "81.2"


def test_it_writes_labels_instead_of_codes_when_asked(records, personas, study, run_export):
    _, _, folder = run_export(
        personas["statistician"], study, formats=["csv"], labels=True, checkboxes="combined"
    )
    frame = pd.read_csv(folder / "dataset.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    a = _by_subject(frame, "A-0001")
    assert a["sex_baseline"] == "Female"
    assert a["smoker_baseline"] == "Yes"
    assert a["symptoms_baseline"] == "Pain|Nausea"
    assert _by_subject(frame, "B-0001")["age_baseline"] == "Unknown"


def test_it_neutralises_formulas_in_csv_and_xlsx(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv", "xlsx"])
    text = (folder / "dataset.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text
    assert ",=HYPERLINK" not in text and ',"=HYPERLINK' not in text
    book = openpyxl.load_workbook(folder / "dataset.xlsx", read_only=True)
    cells = [c for row in book["dataset"].iter_rows(values_only=True) for c in row if isinstance(c, str)]
    book.close()
    assert any(c.startswith("'=HYPERLINK") for c in cells)
    assert not any(c.startswith(("=", "+", "@")) for c in cells)


def test_it_round_trips_xlsx_with_a_codebook_sheet(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["xlsx"], layout="tidy")
    sheets = pd.read_excel(folder / "dataset.xlsx", sheet_name=None, engine="openpyxl")
    assert {"subjects", "demographics", "lesions", "lesions_target_lesions", "animal", "codebook"} <= set(
        sheets
    )
    demo = sheets["demographics"].set_index("subject_id")
    assert demo.loc["A-0001", "age"] == 54
    assert demo.loc["A-0001", "weight"] == 70.5
    codebook = sheets["codebook"]
    sex = codebook[(codebook["table"] == "demographics") & (codebook["column"] == "sex")].iloc[0]
    assert sex["element_public_id"] == "capture.test_sex"
    assert sex["permissible_values"] == "1 = Female; 2 = Male"


def test_it_round_trips_parquet_with_types(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["parquet"])
    table = pq.read_table(folder / "dataset.parquet")
    schema = table.schema
    assert str(schema.field("age_baseline").type) == "int64"
    assert str(schema.field("weight_baseline").type) == "double"
    assert str(schema.field("visit_date_baseline").type) == "date32[day]"
    assert str(schema.field("smoker_baseline").type) == "bool"
    assert schema.field("sex_baseline").metadata[b"element"] == b"capture.test_sex@1.0"
    rows = {r["subject_id"]: r for r in table.to_pylist()}
    a, b = rows["A-0001"], rows["B-0001"]
    assert (a["age_baseline"], a["weight_baseline"], a["smoker_baseline"]) == (54, 70.5, True)
    assert a["visit_date_baseline"] - a["enrollment_date"] == dt.timedelta(days=2)
    assert b["age_baseline"] is None  # UNK in a typed column is null (documented)
    assert b["er_status_baseline"] == "NA"  # in a coded (string) column the code stays


def test_it_round_trips_stata_with_variable_and_value_labels(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["dta"])
    frame, meta = pyreadstat.read_dta(folder / "dataset.dta", user_missing=True)
    assert meta.column_names_to_labels["sex_baseline"] == "Sex [baseline]"
    assert meta.variable_value_labels["sex_baseline"][1] == "Female"
    assert meta.variable_value_labels["er_status_baseline"] == {
        1: "Positive",
        2: "Negative",
        "a": "Not applicable",
        "b": "Unknown",
        "c": "Not done",
        "d": "Not asked",
    }
    a = frame[frame["subject_id"] == "A-0001"].iloc[0]
    b = frame[frame["subject_id"] == "B-0001"].iloc[0]
    assert (a["sex_baseline"], a["age_baseline"], a["weight_baseline"]) == (1, 54, 70.5)
    assert b["age_baseline"] == "b"  # UNK is Stata's .b, labelled
    assert meta.variable_value_labels["age_baseline"]["b"] == "Unknown"
    # pandas reads the same file with the labels applied
    labelled = pd.read_stata(folder / "dataset.dta").set_index("subject_id")
    assert labelled.loc["A-0001", "sex_baseline"] == "Female"
    assert labelled.loc["B-0001", "smoker_baseline"] == "No"


def test_it_round_trips_spss_with_user_missing_codes(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["sav"])
    frame, meta = pyreadstat.read_sav(folder / "dataset.sav", user_missing=True)
    assert meta.column_names_to_labels["age_baseline"] == "Age at enrolment [baseline]"
    assert meta.variable_value_labels["sex_baseline"][2.0] == "Male"
    assert meta.variable_value_labels["age_baseline"][-9992.0] == "Unknown"
    assert meta.missing_ranges["age_baseline"] == [{"lo": -9999.0, "hi": -9991.0}]
    b = frame[frame["subject_id"] == "B-0001"].iloc[0]
    assert b["age_baseline"] == -9992.0
    plain, _ = pyreadstat.read_sav(folder / "dataset.sav")  # user-missing read as missing
    assert pd.isna(plain[plain["subject_id"] == "B-0001"].iloc[0]["age_baseline"])
    assert plain[plain["subject_id"] == "A-0001"].iloc[0]["weight_baseline"] == 70.5


def test_it_round_trips_sas_transport(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["xpt"], layout="long")
    frame, meta = pyreadstat.read_xport(folder / "dataset.xpt")
    assert meta.column_names_to_labels["age"] == "Age at enrolment"
    assert len(frame) == 5  # A: baseline + two week-8 instances; B: baseline; the model: implant
    assert frame[frame["subject_id"] == "A-0001"]["age"].dropna().tolist() == [54.0]


def test_it_writes_odm_that_validates_with_aliases(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["odm"])
    path = folder / "odm.xml"
    assert validate(path) == []
    tree = etree.parse(str(path))
    ns = {"o": NS}
    sex = tree.find(".//o:ItemDef[@OID='I.demographics.sex']", ns)
    assert sex.find("o:Alias", ns).get("Name") == "capture.test_sexv1.0"
    assert tree.find(".//o:ItemDef[@OID='I.demographics.initials']", ns) is None  # identifier left out
    values = {
        d.get("ItemOID"): d.get("Value")
        for d in tree.findall(".//o:SubjectData[@SubjectKey='A-0001']//o:ItemData", ns)
    }
    assert values["I.demographics.age"] == "54"
    assert values["I.demographics.symptoms___pain"] == "1"
    rows = tree.findall(
        ".//o:SubjectData[@SubjectKey='A-0001']//o:ItemGroupData[@ItemGroupOID='IG.lesions.target_lesions']",
        ns,
    )
    assert len(rows) == 3


def test_odm_carries_concept_codes_of_permissible_values(records, personas, study, run_export):
    from capture.definitions.models import PermissibleValue

    PermissibleValue.objects.filter(element__public_id="capture.test_sex", code="1").update(
        concept_code="C16576"
    )
    _, _, folder = run_export(personas["statistician"], study, formats=["odm"])
    tree = etree.parse(str(folder / "odm.xml"))
    item = tree.find(".//o:CodeListItem[@CodedValue='1']", {"o": NS})
    assert item.find("o:Alias", {"o": NS}).attrib == {"Context": "nci:ExtCodeID", "Name": "C16576"}
    assert validate(folder / "odm.xml") == []
