"""Readers: every file kind, sheet choice, header rows, merged headers, and clear errors for bad files."""

import io
import re
import zipfile

import pytest
from msoffcrypto.format.ooxml import OOXMLFile

from capture.imports.readers import ReadError, column_letter, read_table

from .conftest import HNSCC_CSV, need_shared, write_xlsx


def test_it_reads_csv_with_any_delimiter_bom_and_crlf(tmp_path):
    for delimiter in (",", ";", "\t", "|"):
        path = tmp_path / "a.csv"
        text = delimiter.join(["id", "age"]) + "\r\n" + delimiter.join(["A-0001", "54"]) + "\r\n"
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        table = read_table(path)
        assert table.headers == ["id", "age"], delimiter
        assert table.rows == [(2, ["A-0001", "54"])]


def test_it_reads_cp1252_csv_saved_by_excel(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("id;note\r\nA-0001;Pétrus – 5µg\r\n".encode("cp1252"))
    assert read_table(path).rows[0][1] == ["A-0001", "Pétrus – 5µg"]


def test_it_reads_the_hnscc_table_with_its_quirks():
    table = read_table(need_shared(HNSCC_CSV))
    assert len(table.rows) == 215 and len(table.headers) == 83
    assert table.headers[0] == "TCIA code"  # the BOM is gone
    assert "Survival (months)" in table.headers  # the double space is folded
    assert table.rows[0][1][13] == "31/10/98"


def test_it_chooses_a_sheet_and_a_header_row_below_a_title(tmp_path):
    path = write_xlsx(
        tmp_path / "book.xlsx",
        [["Exported 2024-01-01 from FileMaker"], [], ["id", "age"], ["A-0001", 54], [], ["A-0002", 61.0]],
        extra_sheets={"Other": [["x"], [1]]},
    )
    table = read_table(path, sheet="Data", header_row=3)
    assert table.sheets == ["Data", "Other"]
    assert table.headers == ["id", "age"]
    assert table.rows == [
        (4, ["A-0001", 54.0]),
        (6, ["A-0002", 61.0]),
    ]  # blank row 5 skipped, row numbers kept
    assert read_table(path, sheet="Other").headers == ["x"]
    with pytest.raises(ReadError, match="no sheet 'Nope'; its sheets are: Data, Other"):
        read_table(path, sheet="Nope")


def test_it_joins_a_two_row_header_under_merged_cells(tmp_path):
    path = write_xlsx(
        tmp_path / "merged.xlsx",
        [
            ["id", "Weight (kg)", None, "Visit"],
            [None, "start", "end", None],
            ["A-0001", 70, 68.5, "baseline"],
        ],
        merges=["B1:C1", "A1:A2", "D1:D2"],
    )
    table = read_table(path, header_rows=2)
    assert table.headers == ["id", "Weight (kg) / start", "Weight (kg) / end", "Visit"]
    assert table.rows[0][0] == 3


def test_duplicate_headers_are_told_apart_with_a_warning(tmp_path):
    path = write_xlsx(tmp_path / "dup.xlsx", [["id", "weight", "age", "weight"], ["A-0001", 1, 2, 3]])
    table = read_table(path)
    assert table.headers == ["id", "weight", "age", "weight (D)"]
    assert "Columns B and D are both headed 'weight'" in table.warnings[0]


def test_formula_cells_give_their_saved_value(tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["id", "age"], ["A-0001", "=50+4"]])
    # openpyxl writes no cached result; put one in as Excel would have saved it.
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = re.sub(rb"<f>50\+4</f>(<v\s*/>|<v></v>)?", b"<f>50+4</f><v>54</v>", parts[sheet])
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    assert read_table(path).rows[0][1] == ["A-0001", 54.0]


def test_it_reads_ods(tmp_path):
    path = tmp_path / "t.ods"
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body>'
        '<office:spreadsheet><table:table table:name="Sheet1">'
        '<table:table-row><table:table-cell office:value-type="string"><text:p>id</text:p></table:table-cell>'
        '<table:table-cell office:value-type="string"><text:p>age</text:p></table:table-cell></table:table-row>'
        '<table:table-row><table:table-cell office:value-type="string"><text:p>A-0001</text:p></table:table-cell>'
        '<table:table-cell office:value-type="float" office:value="54"><text:p>54</text:p></table:table-cell>'
        "</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED
        )
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    table = read_table(path)
    assert table.headers == ["id", "age"] and table.rows[0][1] == ["A-0001", 54.0]


def test_a_truncated_xlsx_is_refused_clearly(tmp_path):
    good = write_xlsx(tmp_path / "good.xlsx", [["id"], ["A-0001"]])
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ReadError, match="bad.xlsx cannot be read: it is truncated or corrupt.*save it again"):
        read_table(bad)


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path):
    bad = tmp_path / "notes.xlsx"
    bad.write_text("this is not a spreadsheet")
    with pytest.raises(ReadError, match="notes.xlsx cannot be read"):
        read_table(bad)


def test_a_password_protected_xlsx_is_refused_with_what_to_do(tmp_path):
    plain = write_xlsx(tmp_path / "plain.xlsx", [["id"], ["A-0001"]])
    locked = tmp_path / "locked.xlsx"
    out = io.BytesIO()
    with plain.open("rb") as fh:
        OOXMLFile(fh).encrypt("secret", out)
    locked.write_bytes(out.getvalue())
    with pytest.raises(ReadError, match="password-protected.*remove the password"):
        read_table(locked)


def test_a_sheet_over_the_row_limit_is_refused_before_it_is_loaded(tmp_path, settings):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_ROWS": 10}
    path = write_xlsx(tmp_path / "big.xlsx", [["id"]] + [[f"A-{i:04d}"] for i in range(50)])
    with pytest.raises(
        ReadError, match=r"has about 50 data rows; the limit is 10 \(CAPTURE\['IMPORT_MAX_ROWS'\]\)"
    ):
        read_table(path)
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("id\n" + "\n".join(f"A-{i}" for i in range(50)))
    with pytest.raises(ReadError, match="more than 10 data rows"):
        read_table(csv_path)


def test_a_file_over_the_size_limit_is_refused(tmp_path, settings):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_BYTES": 100}
    path = tmp_path / "big.csv"
    path.write_text("id\n" + "x" * 200)
    with pytest.raises(ReadError, match="the limit is 0 MB"):
        read_table(path)


def test_unsupported_suffix_and_missing_header_row_are_explained(tmp_path):
    path = tmp_path / "data.pdf"
    path.write_bytes(b"%PDF")
    with pytest.raises(ReadError, match="reads .xlsx, .xls, .ods and .csv"):
        read_table(path)
    short = tmp_path / "short.csv"
    short.write_text("id\nA\n")
    with pytest.raises(ReadError, match="header was expected in row"):
        read_table(short, header_row=5)


def test_column_letters_follow_excel():
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 702)] == ["A", "Z", "AA", "AZ", "BA", "AAA"]
