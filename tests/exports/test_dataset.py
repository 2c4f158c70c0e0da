"""The builder's selection, layouts, codebook and manifest."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import zipfile

import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from capture.exports.builder import DatasetBuilder
from capture.exports.columns import safe_name
from capture.exports.spec import ExportSpec
from capture.imaging.models import ImagingStudy


def _csv(folder, name="dataset.csv"):
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_long_layout_has_one_row_per_subject_event_and_instance(records, personas, study, run_export):
    _, manifest, folder = run_export(personas["statistician"], study, layout="long", formats=["csv"])
    frame = _csv(folder)
    keys = list(zip(frame["subject_id"], frame["event"], frame["instance"], strict=True))
    assert keys == [
        ("A-0001", "baseline", "1"),
        ("A-0001", "week_8", "1"),
        ("A-0001", "week_8", "2"),
        ("A-0002", "implant", "1"),
        ("B-0001", "baseline", "1"),
    ]
    assert manifest["tables"][0]["rows"] == 5


def test_tidy_layout_has_a_table_per_form_and_per_repeating_group(records, personas, study, run_export):
    _, manifest, folder = run_export(personas["statistician"], study, layout="tidy", formats=["csv"])
    names = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert names["subjects"] == 3 and names["demographics"] == 2 and names["lesions"] == 4
    assert names["lesions_target_lesions"] == 3 and names["animal"] == 1
    rows = _csv(folder, "lesions_target_lesions.csv")
    assert rows["row"].tolist() == ["1", "2", "1"]
    assert rows["lesion_diameter"].tolist() == ["12.5", "8.0", "10.0"]


def test_the_selection_narrows_forms_items_events_and_subjects(records, personas, study, run_export):
    _, _, folder = run_export(
        personas["statistician"],
        study,
        formats=["csv"],
        items=["demographics.age", "lesions.visit_date"],
        events=["baseline"],
        subjects=["A-0001"],
    )
    frame = _csv(folder)
    assert frame["subject_id"].tolist() == ["A-0001"]
    data_columns = [c for c in frame.columns if c.endswith("_baseline")]
    assert data_columns == [
        "demographics_status_baseline",
        "age_baseline",
        "lesions_status_baseline",
        "visit_date_baseline",
    ]


def test_unknown_names_are_reported_with_the_valid_choices(personas, study):
    user = personas["statistician"]
    with pytest.raises(ValidationError, match="choose from baseline, implant, week_8"):
        DatasetBuilder(study=study, user=user, spec=ExportSpec(events=["week_9"]))
    with pytest.raises(ValidationError, match="has no item"):
        DatasetBuilder(study=study, user=user, spec=ExportSpec(items=["demographics.height"]))
    with pytest.raises(ValidationError, match="Layout"):
        DatasetBuilder(study=study, user=user, spec=ExportSpec(layout="sideways"))


def test_combined_checkboxes_make_one_column(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"], checkboxes="combined")
    frame = _csv(folder)
    assert "symptoms___pain_baseline" not in frame.columns
    assert frame.set_index("subject_id").loc["A-0001", "symptoms_baseline"] == "pain|nausea"


def test_the_codebook_describes_every_column(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"])
    header = (folder / "dataset.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    with (folder / "codebook.csv").open(encoding="utf-8-sig") as handle:
        book = {row["column"]: row for row in csv.DictReader(handle)}
    assert list(book) == header
    age = book["age_baseline"]
    assert (age["element_public_id"], age["element_version"], age["question"], age["unit"]) == (
        "capture.test_age",
        "1.0",
        "Age at enrolment",
        "years",
    )
    assert (age["form"], age["event"], age["element_datatype"]) == ("demographics", "baseline", "integer")
    assert "UNK = Unknown" in age["missing_codes"]
    assert book["er_status_baseline"]["stat_values"] == "1 = pos; 2 = neg"


def test_the_manifest_has_provenance_and_the_hash_of_each_file(records, personas, study, run_export):
    path, manifest, folder = run_export(
        personas["statistician"], study, formats=["csv", "parquet"], sites=["A"]
    )
    assert manifest["created_by"] == {"username": "statistician", "role": "statistician"}
    assert manifest["filters"]["sites"] == ["A"]
    assert manifest["layout"] == "wide"
    assert manifest["capture_version"]
    assert manifest["definitions"]["forms"]["demographics@1.0"]
    assert "capture.test_age@1.0" in manifest["definitions"]["elements"]
    assert manifest["definitions"]["schedule"]["ref"] == "basic@1.0"
    assert manifest["tables"] == [{"name": "dataset", "rows": 2, "columns": manifest["tables"][0]["columns"]}]
    assert "--sites A" in manifest["reproduce"]
    with zipfile.ZipFile(path) as bundle:
        listed = {f["name"] for f in manifest["files"]}
        assert set(bundle.namelist()) == listed | {"manifest.json"}
        for entry in manifest["files"]:
            assert hashlib.sha256(bundle.read(entry["name"])).hexdigest() == entry["sha256"]
        assert json.loads(bundle.read("manifest.json"))["export_id"] == manifest["export_id"]


def test_memory_stays_bounded_by_reading_subjects_in_chunks(
    records, personas, study, django_assert_max_num_queries
):
    builder = DatasetBuilder(study=study, user=personas["statistician"], spec=ExportSpec(), chunk_size=1)
    chunks = list(builder.subject_chunks())
    assert [len(c) for c in chunks] == [1, 1, 1]
    table = builder.tables()[0]
    assert sum(len(batch) for batch in table.batches()) == 3


def test_safe_names_keep_the_full_name_in_letters_digits_and_underscores():
    # Full names are never cut (the statistical formats shorten theirs: test_names.py).
    name = safe_name("a_very_long_item_name_that_goes_on___option-x_r12_week_8_i3")
    assert name == "a_very_long_item_name_that_goes_on___option_x_r12_week_8_i3"
    assert safe_name("2nd item") == "v_2nd_item"


def test_a_cohort_filter_keeps_the_subjects_it_matches(records, personas, study, run_export):
    _, _, folder = run_export(
        personas["statistician"], study, formats=["csv"], cohort="[sex] = '1' and [age] >= 18"
    )
    assert _csv(folder)["subject_id"].tolist() == ["A-0001"]
    _, _, folder = run_export(
        personas["statistician"],
        study,
        formats=["csv"],
        layout="long",
        cohort="sum([baseline][lesion_diameter]) > 20",
    )
    assert set(_csv(folder)["subject_id"]) == {"A-0001"}


def test_a_bad_cohort_filter_says_where_it_is_wrong(personas, study):
    with pytest.raises(ValidationError, match="not a valid expression"):
        DatasetBuilder(study=study, user=personas["statistician"], spec=ExportSpec(cohort="[age] >>= 3"))


def test_imaging_columns_link_studies_to_subjects(records, personas, study, run_export):
    a = records["a"]
    shifted_enrolment = a.enrollment_date + dt.timedelta(days=a.date_shift_days)
    for n, (day, modalities) in enumerate([(2, "CT"), (60, "CT,PT")]):
        ImagingStudy.objects.create(
            study=study,
            subject=a,
            study_uid=f"2.25.{n}",
            modalities=modalities,
            study_date=shifted_enrolment + dt.timedelta(days=day),
            source_kind="folder",
            source="x",
        )
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"])
    row = _csv(folder).set_index("subject_id").loc["A-0001"]
    assert (row["imaging_study_count"], row["imaging_modalities"]) == ("2", "CT|PT")
    assert (row["imaging_first_day"], row["imaging_last_day"]) == ("2", "60")
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"], layout="long")
    studies = _csv(folder, "imaging_studies.csv")
    assert studies["study_day"].tolist() == ["2", "60"]
    assert studies["study_date"].tolist()[0] == (shifted_enrolment + dt.timedelta(days=2)).isoformat()
    _, _, folder = run_export(
        personas["statistician"], study, formats=["csv"], cohort="[modality_count] >= 2"
    )
    assert _csv(folder)["subject_id"].tolist() == ["A-0001"]


def test_a_spec_from_an_api_payload_refuses_unknown_options():
    assert ExportSpec.from_dict({"layout": "long", "formats": ["parquet"]}).layout == "long"
    with pytest.raises(ValidationError, match="Unknown export option"):
        ExportSpec.from_dict({"layout": "long", "identifed": True})


@pytest.mark.parametrize("layout", ["wide", "long", "tidy"])
def test_picking_only_patient_events_exports_no_animal_model_rows(
    records, personas, study, run_export, layout
):
    _, _, folder = run_export(
        personas["statistician"], study, formats=["csv"], layout=layout, events=["baseline", "week_8"]
    )
    first = "subjects.csv" if layout == "tidy" else "dataset.csv"
    assert sorted(set(_csv(folder, first)["subject_id"])) == ["A-0001", "B-0001"]  # A-0002 is the PDX model


def test_picking_only_patient_forms_or_only_model_events_honours_the_choice(
    records, personas, study, run_export
):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"], forms=["demographics"])
    assert _csv(folder)["subject_id"].tolist() == ["A-0001", "B-0001"]
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"], events=["implant"])
    frame = _csv(folder)
    assert frame["subject_id"].tolist() == ["A-0002"]
    assert frame["strain_implant"].tolist() == ["NSG"]


def test_with_nothing_chosen_every_subject_is_exported(records, personas, study, run_export):
    _, _, folder = run_export(personas["statistician"], study, formats=["csv"])
    assert _csv(folder)["subject_id"].tolist() == ["A-0001", "A-0002", "B-0001"]
