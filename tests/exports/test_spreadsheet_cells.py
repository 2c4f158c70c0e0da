"""No cell of a CSV or XLSX file an export writes for people runs as a formula when opened.

The registry study's note item holds '=HYPERLINK(...)' and '+1 more' for two subjects; its
label is '+SUM(1,2)' and its question '=HYPERLINK(...)', which the codebook repeats. Read back
from the files: every such text starts with an apostrophe, no XLSX cell is a formula, and
numbers (a score of -3) stay numbers.
"""

from __future__ import annotations

import csv
import json

import openpyxl

FORMULA = ("=", "+", "-", "@", "\t", "\r")
QUESTION = '=HYPERLINK("http://evil.example/?q=1","Note")'
NOTE = '=HYPERLINK("http://evil.example/","x")'


def _csv(path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_codebook_csv_neutralises_labels_and_questions(registry, run_export):
    _, _, folder = run_export(registry.statistician, registry.study)
    note = next(r for r in _csv(folder / "codebook.csv") if r["item"] == "note")
    assert note["label"] == "'+SUM(1,2) [baseline]"
    assert note["question"] == "'" + QUESTION
    for row in _csv(folder / "codebook.csv"):
        for value in row.values():
            assert not value.startswith(FORMULA), f"{value!r} in codebook.csv would run as a formula"


def test_csv_data_cells_are_neutralised_and_numbers_stay_numbers(registry, run_export):
    _, _, folder = run_export(registry.statistician, registry.study, layout="long")
    rows = {r["subject_id"]: r for r in _csv(folder / "dataset.csv")}
    first, second, third = (s.subject_id for s in registry.subjects)
    assert rows[first]["note"] == "'" + NOTE
    assert rows[third]["note"] == "'+1 more"
    assert rows[second]["note"] == "plain words"
    assert rows[second]["score"] == "-3"  # a negative number is data, not a formula


def test_xlsx_has_no_formula_cell_and_keeps_numbers_typed(registry, run_export):
    _, _, folder = run_export(registry.statistician, registry.study, formats=["xlsx"], labels=True)
    book = openpyxl.load_workbook(folder / "dataset.xlsx")  # not read-only: data_type is exact
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
    assert cells and not [c.coordinate for c in cells if c.data_type == "f"]
    texts = [c.value for c in cells if c.data_type == "s"]
    assert "'" + NOTE in texts and "'+1 more" in texts
    assert "'+SUM(1,2) [baseline]" in texts and "'" + QUESTION in texts  # the codebook sheet
    assert not [t for t in texts if t.startswith(FORMULA)]
    sheet = book["dataset"]
    header = [c.value for c in sheet[1]]
    scores = [row[header.index("score_baseline")] for row in sheet.iter_rows(min_row=2)]
    assert [(c.data_type, c.value) for c in scores] == [("n", 5), ("n", -3), ("n", 12)]
    book.close()


def test_missing_code_meanings_are_neutralised_too(registry, run_export):
    # A study's missing-data codes are set by its administrators; their meanings are text too.
    study = registry.study
    study.missing_codes = [{"code": "UNK", "meaning": "@unknown"}]
    study.save(update_fields=["missing_codes"])
    from capture.records.models import FormRecord

    record = FormRecord.objects.get(subject=registry.subjects[1])
    record.data = {**record.data, "note": "UNK", "stage": "UNK"}
    record.save(update_fields=["data"])
    _, manifest, folder = run_export(registry.statistician, study, formats=["csv", "xlsx"], labels=True)
    rows = {r["subject_id"]: r for r in _csv(folder / "dataset.csv")}
    second = rows[registry.subjects[1].subject_id]
    assert (second["note_baseline"], second["stage_baseline"]) == ("'@unknown", "'@unknown")
    assert rows[registry.subjects[0].subject_id]["stage_baseline"] == "Stage I"
    note = next(r for r in _csv(folder / "codebook.csv") if r["item"] == "note")
    assert note["missing_codes"] == "UNK = @unknown"  # starts with the code: not a formula
    book = openpyxl.load_workbook(folder / "dataset.xlsx")
    values = [c.value for row in book["dataset"].iter_rows() for c in row]
    assert values.count("'@unknown") == 2 and "@unknown" not in values
    book.close()
    json.dumps(manifest)  # the manifest stays plain JSON, values as they are
    assert manifest["missing_codes"] == [{"code": "UNK", "meaning": "@unknown"}]
