"""Issue 14's "done when": every export format of the demo study with every form selected, and of
every REDCap project in ../shared, opens in pandas and pyreadstat, with the longest names the
shipped definitions and those projects produce. CSV, XLSX and Parquet carry the full names; Stata,
SPSS and SAS the names the codebook maps them to."""

from __future__ import annotations

import csv
import re

import pandas as pd
import pyreadstat
import pytest
from django.contrib.auth import get_user_model

from capture.definitions.models import EventForm
from capture.exports.writers.odm import validate
from capture.migration.redcap import migrate
from tests.conftest import SHARED
from tests.requirements import need_shared

ALL = ["csv", "xlsx", "parquet", "dta", "sav", "xpt", "odm"]
REDCAP = SHARED / "data" / "redcap"
HASH_CUT = re.compile(r"_[0-9a-f]{5}$")  # how names used to be cut in every format


def _codebook(folder) -> dict[str, list[dict]]:
    with (folder / "codebook.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tables: dict[str, list[dict]] = {}
    for row in rows:
        tables.setdefault(row["table"], []).append(row)
    return tables


def _read_back(folder, manifest) -> dict[str, list[str]]:
    """Every file read back: each table's columns per format; row counts checked against the manifest."""
    codebook = _codebook(folder)
    sheets = pd.read_excel(folder / "dataset.xlsx", sheet_name=None, engine="openpyxl")
    sheet_frames = list(sheets.values())
    assert list(sheets)[-1] == "codebook"
    names = {}
    for n, table in enumerate(manifest["tables"]):
        name, rows = table["name"], table["rows"]
        full = [r["column"] for r in codebook[name]]
        frames = {
            "csv": pd.read_csv(
                folder / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
            ),
            "xlsx": sheet_frames[n],
            "parquet": pd.read_parquet(folder / f"{name}.parquet"),
            "dta": pyreadstat.read_dta(folder / f"{name}.dta", user_missing=True)[0],
            "sav": pyreadstat.read_sav(folder / f"{name}.sav", user_missing=True)[0],
            "xpt": pyreadstat.read_xport(folder / f"{name}.xpt")[0],
            "pandas_stata": pd.read_stata(folder / f"{name}.dta", convert_categoricals=False),
            "pandas_spss": pd.read_spss(folder / f"{name}.sav", convert_categoricals=False),
        }
        for fmt, frame in frames.items():
            assert len(frame) == rows, f"{name}.{fmt}: {len(frame)} rows, the manifest says {rows}"
        for fmt in ("csv", "xlsx", "parquet"):
            assert list(frames[fmt].columns) == full, f"{name}.{fmt} keeps the full names"
        for fmt, field in (("dta", "stata_name"), ("sav", "spss_name"), ("xpt", "sas_name")):
            assert list(frames[fmt].columns) == [r[field] for r in codebook[name]], f"{name}.{fmt}"
        assert list(frames["pandas_stata"].columns) == list(frames["dta"].columns)
        assert not [c for c in full if HASH_CUT.search(c)], f"{name}: a full name was cut"
        names[name] = full
    assert validate(folder / "odm.xml") == []
    return names


def _stata_labels(folder, table) -> dict[str, str]:
    return pyreadstat.read_dta(folder / f"{table}.dta", metadataonly=True)[1].column_names_to_labels


def _measure(study) -> None:
    """A measurement report, a timepoint response and a best response for each of two demo subjects,
    so the measurement tables have rows of every column (issue 17)."""
    from decimal import Decimal

    from capture.accounts.system import SYSTEM
    from capture.measurements.models import BestResponse, TimepointResponse
    from capture.measurements.store import Coded, IncomingReport, MeasuredValue, store_report
    from capture.studies.models import Subject

    for n, subject in enumerate(
        # Two patients the demo gave no measurement report (its first six have theirs, with responses).
        Subject.objects.filter(study=study, kind="patient", lesions__isnull=True).order_by("subject_id")[:2]
    ):
        values = [
            MeasuredValue(
                "L1", Coded("SCT", "103339001", "Long Axis"), Decimal("31.5"), "mm", tracking_uid="2.25.9"
            ),
            MeasuredValue(
                "L1", Coded("DCM", "126401", "SUVbw"), Decimal("7.2"), "g/mL", derivation="Maximum"
            ),
        ]
        incoming = IncomingReport(
            sop_uid=f"2.25.{n}", date=subject.enrollment_date, values=values, observer="R1"
        )
        report, _ = store_report(
            actor=SYSTEM, study=study, subject=subject, incoming=incoming, source_kind="sr", source="t"
        )
        TimepointResponse.objects.create(
            study=study, subject=subject, report=report, method="recist11", event=report.event, day=0,
            is_baseline=True, sum_mm=Decimal("31.5"), nadir_mm=Decimal("31.5"), change_from_baseline_pct=0.0,
            target="SD", non_target="NON-CR/NON-PD", overall="SD",
        )  # fmt: skip
        BestResponse.objects.create(
            study=study, subject=subject, method="recist11", response="SD", confirmed=True
        )


@pytest.mark.parametrize("layout", ["wide", "long", "tidy"])
def test_every_format_of_the_demo_study_with_every_form_opens_in_pandas_and_pyreadstat(
    demo, run_export, layout
):
    statistician = get_user_model().objects.get(username="statistician")
    _measure(demo.study)
    forms = sorted(
        set(
            EventForm.objects.filter(event__arm__schedule=demo.study.schedule).values_list(
                "form__name", flat=True
            )
        )
    )
    assert len(forms) == 12
    _, manifest, folder = run_export(
        statistician, demo.study, formats=ALL, layout=layout, forms=forms, measurements=True
    )
    assert all(r["written"] for r in manifest["format_results"]), manifest["format_results"]
    rows = {t["name"]: t["rows"] for t in manifest["tables"]}
    from capture.measurements.models import BestResponse, Measurement, TimepointResponse

    # Every stored row is exported: the demo's own reports (its measured patients) and _measure's.
    stored = (
        Measurement.objects.filter(report__study=demo.study).count(),
        TimepointResponse.objects.filter(study=demo.study).count(),
        BestResponse.objects.filter(study=demo.study).count(),
    )
    assert stored[0] > 4 and stored[2] > 2  # the demo measured some patients itself
    assert (rows["measurements"], rows["responses"], rows["best_responses"]) == stored
    assert manifest["subjects"] >= 6 if layout != "long" else manifest["tables"][0]["rows"] > 6
    names = _read_back(folder, manifest)
    if layout == "wide":
        columns = names["dataset"]
        # The second instance of the treatment form, readable in full (it was cut to a hash).
        assert "treatment_start_date_on_treatment_i2" in columns
        assert "imaging_body_region___whole_body_follow_up" in columns
        codebook = {r["column"]: r for r in _codebook(folder)["dataset"]}
        short = codebook["treatment_start_date_on_treatment_i2"]["stata_name"]
        assert len(short) <= 32 and short != codebook["treatment_start_date_on_treatment_i1"]["stata_name"]
        label = _stata_labels(folder, "dataset")[short]
        assert label.startswith("treatment_start_date_on_treatment_i2: ")
        # SPSS takes 64 characters: the full name.
        assert (
            codebook["treatment_start_date_on_treatment_i2"]["spss_name"]
            == "treatment_start_date_on_treatment_i2"
        )


def _redcap_files(project: str) -> list[tuple[str, bytes]]:
    if project == "TumorBank":
        paths = [REDCAP / "hypotheses_ICBS_TumorBank_DataDictionary.csv"]  # a dictionary without data
    elif project == "longitudinal":
        paths = [
            REDCAP / f"redcapr_longitudinal_{part}.csv" for part in ("dictionary", "arm", "event", "data")
        ]
    else:
        paths = [REDCAP / f"redcapr_{project}_dictionary.csv", REDCAP / f"redcapr_{project}_data.csv"]
    files = [(path.name, need_shared(path).read_bytes()) for path in paths]
    if project == "longitudinal":
        from tests.conftest import ROOT

        mapping = ROOT / "fixtures" / "interop" / "redcap" / "longitudinal_mapping.csv"
        files.append(("mapping.csv", mapping.read_bytes()))
    return files


@pytest.mark.parametrize(
    "project", ["TumorBank", "longitudinal", "repeating", "checkboxes", "validation_types", "simple"]
)
def test_every_format_of_each_redcap_project_opens_with_its_longest_names(make_user, run_export, project):
    boss = make_user("boss", is_staff=True)
    value_map = {"sex": {"TRUE": "1", "FALSE": "0"}} if project == "simple" else None
    report = migrate(user=boss, slug=project.lower(), files=_redcap_files(project), value_map=value_map)
    assert report.ok, "\n".join(report.lines())
    for layout in ("wide", "tidy"):
        _, manifest, folder = run_export(boss, report.study, formats=ALL, layout=layout)
        assert all(r["written"] for r in manifest["format_results"]), manifest["format_results"]
        names = _read_back(folder, manifest)
        if project == "TumorBank" and layout == "tidy":
            # Its longest field, 33 characters: whole in CSV, shortened for Stata and SAS only.
            table = next(t for t, cols in names.items() if "days_to_last_known_disease_status" in cols)
            row = next(
                r for r in _codebook(folder)[table] if r["column"] == "days_to_last_known_disease_status"
            )
            assert row["spss_name"] == "days_to_last_known_disease_status"
            assert len(row["stata_name"]) <= 32 and len(row["sas_name"]) <= 32
            assert row["stata_name"].startswith("days_to_last_known_dis")
