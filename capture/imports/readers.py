"""Read a spreadsheet into a header and rows, whatever the file is.

python-calamine (Rust) reads .xlsx, .xlsm, .xls and .ods: measured on the
benchmark's 100,000 × 40 sheet it parses several times faster than openpyxl's
read-only mode, and it reports password protection and broken archives as
distinct errors. CSV goes through the standard library (delimiter sniffed,
UTF-8 with or without BOM, else cp1252). openpyxl is used only to write the
annotated report (annotate.annotated_workbook).

Every failure is a ReadError whose message names the file and says what to do.
Row numbers are the spreadsheet's own (1 = the first row), so a report can say
"row 17" and the user finds it in Excel.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

SPREADSHEET_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
SUFFIXES = SPREADSHEET_SUFFIXES | CSV_SUFFIXES
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"

# Limits on what one upload may cost (settings: CAPTURE[name]). An .xlsx/.ods is a zip archive: a
# 409 KB file can hold a 400 MB cell, so the archive's unpacked size is checked before any parsing.
# 200 MB unpacked is about 110,000 rows × 40 columns as Excel writes them. A cell holds at most
# 32,767 characters in Excel itself; a header is a column's name on the mapping page.
DEFAULT_LIMITS = {
    "IMPORT_MAX_ROWS": 250_000,
    "IMPORT_MAX_BYTES": 200 * 1024 * 1024,
    "IMPORT_MAX_UNPACKED_BYTES": 200 * 1024 * 1024,
    "IMPORT_MAX_CELL_CHARS": 32_767,
    "IMPORT_MAX_HEADER_CHARS": 1_000,
}


class ReadError(Exception):
    """The file cannot be read as a table; the message says why and what to do."""


def limit(name: str) -> int:
    return int(settings.CAPTURE.get(name, DEFAULT_LIMITS[name]))


@dataclass
class Table:
    """A sheet as headers and data rows. `rows` holds (row number, cells) with blank rows dropped."""

    sheet: str
    sheets: list[str]
    headers: list[str]
    header_row: int
    rows: list[tuple[int, list]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kind: str = "xlsx"
    # Cells whose value is a cached copy from another workbook: (row number, column index, formula).
    # Their value is blanked here; the import reports each (plan.build_plan).
    external: list[tuple[int, int, str]] = field(default_factory=list)

    def column_letter(self, index: int) -> str:
        return column_letter(index)

    def column_index(self, header: str) -> int | None:
        try:
            return self.headers.index(header)
        except ValueError:
            return None


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA (Excel's column names)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def read_table(
    path: Path,
    *,
    sheet: str = "",
    header_row: int = 1,
    header_rows: int = 1,
    delimiter: str = "",
    encoding: str = "",
    max_rows: int | None = None,
) -> Table:
    """Read one sheet. `header_row` is the first header row (1-based); `header_rows` how many rows
    the header spans (a two-row header "Dates / start" under a merged "Dates" cell)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ReadError(
            f"{path.name}: Capture reads .xlsx, .xls, .ods and .csv files; save the file in one of these formats."
        )
    if header_row < 1 or header_rows < 1:
        raise ReadError("The header row and the number of header rows start at 1.")
    size = path.stat().st_size
    max_bytes = limit("IMPORT_MAX_BYTES")
    if size > max_bytes:
        raise ReadError(
            f"{path.name} is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB "
            "(CAPTURE['IMPORT_MAX_BYTES']). Split the file, or ask an administrator to raise the limit."
        )
    if size == 0:
        raise ReadError(f"{path.name} is empty.")
    max_rows = max_rows or limit("IMPORT_MAX_ROWS")
    if suffix in CSV_SUFFIXES:
        grid, name, sheets, merged, kind = _read_csv(
            path, delimiter, encoding, max_rows, header_row + header_rows - 1
        )
    else:
        grid, name, sheets, merged, kind = _read_workbook(path, sheet, max_rows, header_row + header_rows - 1)
    external = _blank_external_links(path, name, grid) if kind in ("xlsx", "xlsm") else []
    table = _to_table(grid, name, sheets, merged, header_row, header_rows, max_rows, kind, path.name)
    table.external = [cell for cell in external if cell[0] > header_row + header_rows - 1]
    return table


def check_archive(path: Path) -> None:
    """Refuse an .xlsx/.xlsm/.ods whose zip members unpack to more than
    CAPTURE['IMPORT_MAX_UNPACKED_BYTES'], before a reader unpacks it. The sizes in the archive's
    directory are only its claim, so every member is also unpacked and counted (Python's zipfile
    stops at the claimed size and fails the CRC of a member that holds more)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return  # not an archive (an .xls, or broken): the workbook reader says what is wrong
    allowed = limit("IMPORT_MAX_UNPACKED_BYTES")

    def too_big(size: int) -> ReadError:
        return ReadError(
            f"{path.name} unpacks to more than {allowed / 1e6:.0f} MB (at least {size / 1e6:.0f} MB), the limit "
            "(CAPTURE['IMPORT_MAX_UNPACKED_BYTES']). A workbook this large usually holds a pasted block of text "
            "or many empty formatted rows: remove them, or split the sheet into smaller files."
        )

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            claimed = sum(m.file_size for m in members)
            if claimed > allowed:
                raise too_big(claimed)
            seen = 0
            for member in members:
                with archive.open(member) as fh:
                    while chunk := fh.read(1 << 20):
                        seen += len(chunk)
                        if seen > allowed:
                            raise too_big(seen)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2 and lzma each raise their own errors for a broken member
        raise ReadError(
            f"{path.name} cannot be read: it is truncated or corrupt ({exc}). Open it in Excel or LibreOffice, "
            "save it again, and upload the saved copy."
        ) from None


# An external reference as Excel stores it in a formula: [1]Sheet!A1, [1]!Name, or quoted
# '[1]My sheet'!A1 / 'C:\dir\[book.xlsx]Sheet'!A1. A table's structured reference (Table1[Col],
# Table1[[#This Row],[Col]]) has no "!" after its bracket and is not one.
_EXTERNAL_REF = re.compile(r"'[^']*\[[^\]']+\][^']*'!|\[\d+\][\w.]*!")
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


_SAFE_XML = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _blank_external_links(path: Path, sheet: str, grid: list[list]) -> list[tuple[int, int, str]]:
    """Cells of `sheet` computed from another workbook (an external link): their cached value is a
    copy Capture cannot check, so it is not imported. Each such cell is blanked in `grid` and
    returned as (row number, column index, formula)."""
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            found = _linked_cells(archive, sheet)
    except (KeyError, zipfile.BadZipFile, ValueError, etree.LxmlError) as exc:
        raise ReadError(
            f"{path.name}: its links to other workbooks cannot be read ({exc}). Save it again from Excel."
        ) from None
    # The grid starts at A1 (calamine with skip_empty_area=False); r="C7" is row 7, column index 2.
    for row, col, _ in found:
        if row - 1 < len(grid) and col < len(grid[row - 1]):
            grid[row - 1][col] = None
    return found


def _parse_xml(archive: zipfile.ZipFile, name: str):
    from lxml import etree

    with archive.open(name) as fh:
        return etree.parse(fh, etree.XMLParser(**_SAFE_XML)).getroot()  # noqa: S320 - no DTD, no entities, no network


def _linked_cells(archive: zipfile.ZipFile, sheet: str) -> list[tuple[int, int, str]]:
    """(row, column index, formula) of each cell of `sheet` whose formula links to another workbook."""
    if not any(n.startswith("xl/externalLinks/") for n in archive.namelist()):
        return []  # no link to another workbook anywhere in the file
    book = _parse_xml(archive, "xl/workbook.xml")
    part = _sheet_part(archive, book, sheet)
    if not part:
        return []
    return _scan_formulas(archive, part, _external_pattern(book))


def _sheet_part(archive: zipfile.ZipFile, book, sheet: str) -> str:
    """The archive member that holds `sheet` ("xl/worksheets/sheet1.xml"), or "" if none does."""
    rels = {
        r.get("Id"): r.get("Target", "")
        for r in _parse_xml(archive, "xl/_rels/workbook.xml.rels").iter(f"{_PKG_REL}Relationship")
    }
    target = ""
    for node in book.iter(f"{_MAIN}sheet"):
        if node.get("name") == sheet:
            target = rels.get(node.get(f"{_REL}id"), "")
    if not target:
        return ""
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


def _external_pattern(book) -> re.Pattern:
    """_EXTERNAL_REF, and the workbook's defined names that point to another workbook: such a name
    links out wherever a formula uses it."""
    linked_names = [
        re.escape(node.get("name", ""))
        for node in book.iter(f"{_MAIN}definedName")
        if node.get("name") and _EXTERNAL_REF.search(node.text or "")
    ]
    if not linked_names:
        return _EXTERNAL_REF
    return re.compile(
        _EXTERNAL_REF.pattern + "|" + "|".join(rf"(?<![\w.])({n})(?![\w.(])" for n in linked_names)
    )


def _scan_formulas(archive: zipfile.ZipFile, part: str, external: re.Pattern) -> list[tuple[int, int, str]]:
    from lxml import etree

    found = []
    shared: dict[str, bool] = {}  # a shared formula's index -> does its master link out
    with archive.open(part) as fh:
        for _, node in etree.iterparse(fh, events=("end",), **_SAFE_XML):  # noqa: S320 - as _parse_xml
            if node.tag != f"{_MAIN}c":
                if node.tag == f"{_MAIN}row":
                    node.clear()
                continue
            formula = node.find(f"{_MAIN}f")
            if formula is None:
                continue
            text = formula.text or ""
            linked = bool(external.search(text))
            if formula.get("t") == "shared" and formula.get("si") is not None:
                si = formula.get("si")
                if text:
                    shared[si] = linked
                else:
                    linked = shared.get(si, False)
            if linked:
                row, col = _cell_ref(node.get("r", ""))
                if row is not None:
                    found.append((row, col, text or "(shared formula)"))
    return found


def _cell_ref(ref: str) -> tuple[int | None, int]:
    """ "AB12" -> (12, 27): the row number and the 0-based column index."""
    match = re.fullmatch(r"([A-Z]{1,3})(\d+)", ref)
    if not match:
        return None, 0
    col = 0
    for letter in match.group(1):
        col = col * 26 + ord(letter) - 64
    return int(match.group(2)), col - 1


def _open_workbook(path: Path):
    import python_calamine as pc

    with path.open("rb") as fh:
        head = fh.read(8)
    if path.suffix.lower() in (".xlsx", ".xlsm", ".ods") and head.startswith(_OLE_MAGIC):
        # An encrypted OOXML file is an OLE container holding the encrypted package.
        raise ReadError(
            f"{path.name} is password-protected. Open it in Excel, remove the password "
            "(File › Info › Protect Workbook › Encrypt with Password, clear it), save, and upload again."
        )
    check_archive(path)
    try:
        return pc.CalamineWorkbook.from_path(os.fspath(path))
    except pc.PasswordError:
        raise ReadError(
            f"{path.name} is password-protected. Remove the password in Excel and upload it again."
        ) from None
    except (pc.ZipError, pc.XmlError, pc.CalamineError) as exc:
        hint = "it is truncated or corrupt" if head.startswith(_ZIP_MAGIC) else "it is not a valid workbook"
        raise ReadError(
            f"{path.name} cannot be read: {hint} ({exc}). Open it in Excel or LibreOffice, save it again, "
            "and upload the saved copy."
        ) from None
    except Exception as exc:  # noqa: BLE001 - calamine raises plain errors for some broken files; all mean "unreadable"
        raise ReadError(f"{path.name} cannot be read ({exc}). Save it again from Excel and retry.") from None


def _read_workbook(path: Path, sheet: str, max_rows: int, header_end: int):
    import python_calamine as pc

    book = _open_workbook(path)
    names = book.sheet_names
    if not names:
        raise ReadError(f"{path.name} has no sheets.")
    name = sheet or names[0]
    if name not in names:
        raise ReadError(f"{path.name} has no sheet {name!r}; its sheets are: {', '.join(names)}.")
    try:
        ws = book.get_sheet_by_name(name)
    except pc.CalamineError as exc:
        raise ReadError(f"Sheet {name!r} of {path.name} cannot be read ({exc}).") from None
    # calamine's height counts from the sheet's first used row; refuse before building Python rows.
    height = ws.end[0] + 1 if ws.end else 0  # end: the last used cell, 0-based
    if height > max_rows + header_end:
        raise ReadError(
            f"Sheet {name!r} has about {height - header_end:,} data rows; the limit is {max_rows:,} "
            "(CAPTURE['IMPORT_MAX_ROWS']). Split the sheet into smaller files."
        )
    grid = ws.to_python(skip_empty_area=False)
    merged = list(ws.merged_cell_ranges or []) if hasattr(ws, "merged_cell_ranges") else []
    kind = path.suffix.lower().lstrip(".")
    return grid, name, names, merged, kind


def _decode(data: bytes, encoding: str, name: str) -> str:
    if encoding:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise ReadError(f"{name} is not {encoding} ({exc}); choose the file's encoding.") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" and some Windows tools write UTF-16 with a byte-order mark.
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ReadError(f"{name} starts like UTF-16 text but is not; save it as CSV UTF-8.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Windows saves "CSV" as cp1252. Five bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are
        # undefined there, so a file that is neither is refused rather than guessed.
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ReadError(
            f"{name} is neither UTF-8 nor Windows-1252 text (byte {data[exc.start]:#04x} at offset {exc.start}). "
            "If it is a CSV file, save it as 'CSV UTF-8', or choose its encoding."
        ) from None


def _read_csv(path: Path, delimiter: str, encoding: str, max_rows: int, header_end: int):
    data = path.read_bytes()
    if data.startswith((_ZIP_MAGIC, _OLE_MAGIC)):
        raise ReadError(f"{path.name} is a workbook, not a CSV file; rename it to .xlsx or .xls.")
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16 and not encoding and b"\x00" in data[:4096]:
        raise ReadError(f"{path.name} is not a text file (it holds binary data); upload the CSV export.")
    text = _decode(data, encoding, path.name)
    if "\x00" in text[:4096]:
        raise ReadError(f"{path.name} is not a text file (it holds binary data); upload the CSV export.")
    if not delimiter:
        sample = text[:65536]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    elif delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ReadError(
            f"The delimiter {delimiter!r} cannot separate columns; use one character: , ; | or \\t (tab)."
        )
    grid = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            grid.append(row)
            if len(grid) > max_rows + header_end:
                raise ReadError(
                    f"{path.name} has more than {max_rows:,} data rows, the limit (CAPTURE['IMPORT_MAX_ROWS']). "
                    "Split the file into smaller ones."
                )
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise _too_long(path.stem, len(grid) + 1, None, csv.field_size_limit()) from None
        raise ReadError(f"{path.name} is not valid CSV at line {len(grid) + 1}: {exc}.") from None
    return grid, path.stem, [path.stem], [], "csv"


def _too_long(sheet: str, row: int, col: int | None, length: int) -> ReadError:
    where = f"row {row}" + (f", column {column_letter(col)}" if col is not None else "")
    allowed = limit("IMPORT_MAX_CELL_CHARS")
    return ReadError(
        f"Sheet {sheet!r}, {where} holds a cell of {length:,} characters or more; the limit is {allowed:,} "
        "(Excel's own, CAPTURE['IMPORT_MAX_CELL_CHARS']). Shorten that cell or leave it out of the file."
    )


def _check_cell_lengths(grid: list[list], sheet: str) -> None:
    """Refuse a sheet with a cell longer than Excel itself allows, naming the cell, before the
    mapping page or the report copies it anywhere."""
    allowed = limit("IMPORT_MAX_CELL_CHARS")
    for r, cells in enumerate(grid):
        try:
            longest = max(map(len, cells), default=0)  # a row of texts (every CSV row): at C speed
        except TypeError:  # a number, date or blank cell of a workbook: its texts only
            longest = max((len(v) for v in cells if v.__class__ is str), default=0)
        if longest > allowed:
            c = next(i for i, v in enumerate(cells) if v.__class__ is str and len(v) == longest)
            raise _too_long(sheet, r + 1, c, longest)


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _header_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.date):
        value = value.isoformat()
    return " ".join(str(value).split()) if not _blank(value) else ""


def _to_table(grid, name, sheets, merged, header_row, header_rows, max_rows, kind, filename) -> Table:
    _check_cell_lengths(grid, name)
    first = header_row - 1
    last = first + header_rows
    if len(grid) < last:
        raise ReadError(
            f"Sheet {name!r} of {filename} has {len(grid)} row(s); the header was expected in row(s) "
            f"{header_row}–{last}. Choose the row the column names are in."
        )
    width = max((len(r) for r in grid), default=0)
    headers = _joined_headers(_header_grid(grid, merged, first, last, width), width)
    _check_header_lengths(headers, name)
    warnings = _rename_duplicates(headers)
    rows = []
    for index in range(last, len(grid)):
        cells = list(grid[index])
        if all(_blank(v) for v in cells):
            continue  # blank rows separate blocks in hand-kept sheets; they carry nothing
        rows.append((index + 1, cells + [""] * (width - len(cells))))
    if len(rows) > max_rows:
        raise ReadError(
            f"Sheet {name!r} has {len(rows):,} data rows; the limit is {max_rows:,} (CAPTURE['IMPORT_MAX_ROWS']). "
            "Split it into smaller files."
        )
    return Table(
        sheet=name,
        sheets=sheets,
        headers=headers,
        header_row=header_row,
        rows=rows,
        warnings=warnings,
        kind=kind,
    )


def _header_grid(grid, merged, first: int, last: int, width: int) -> list[list]:
    """The header rows, each `width` cells, with merged and continued header cells filled in."""
    header_grid = [list(grid[i]) + [""] * (width - len(grid[i])) for i in range(first, last)]
    # A merged header cell ("Dates" over "start" and "end") holds its text in its first cell only;
    # spread it over the range so each column gets "Dates / start", "Dates / end".
    for (r0, c0), (r1, c1) in merged:
        for r in range(max(r0, first), min(r1, last - 1) + 1):
            value = grid[r0][c0] if r0 < len(grid) and c0 < len(grid[r0]) else ""
            for c in range(c0, c1 + 1):
                header_grid[r - first][c] = value
    if last - first > 1 and not merged:
        # CSV has no merges: an upper header cell left blank continues the one on its left.
        for row in header_grid[:-1]:
            for c in range(1, width):
                if _blank(row[c]):
                    row[c] = row[c - 1]
    return header_grid


def _joined_headers(header_grid: list[list], width: int) -> list[str]:
    """Each column's header: its header cells' texts joined by " / " (a repeated text once)."""
    headers = []
    for c in range(width):
        parts: list[str] = []
        for row in header_grid:
            text = _header_text(row[c])
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        headers.append(" / ".join(parts))
    return headers


def _check_header_lengths(headers: list[str], name: str) -> None:
    header_limit = limit("IMPORT_MAX_HEADER_CHARS")
    for c, h in enumerate(headers):
        if len(h) > header_limit:
            raise ReadError(
                f"Sheet {name!r}: the header of column {column_letter(c)} is {len(h):,} characters long; a column "
                f"name may have {header_limit:,} (CAPTURE['IMPORT_MAX_HEADER_CHARS']). Is the header row right? "
                "Choose the row the column names are in, or shorten the name."
            )


def _rename_duplicates(headers: list[str]) -> list[str]:
    """Give a repeated header its column letter ("Weight (D)") in place; the warnings say so."""
    warnings = []
    seen: dict[str, int] = {}
    for c, h in enumerate(headers):
        if not h:
            continue
        if h in seen:
            new = f"{h} ({column_letter(c)})"
            warnings.append(
                f"Columns {column_letter(seen[h])} and {column_letter(c)} are both headed {h!r}; "
                f"the second is called {new!r} here. Rename one in the file if that is a mistake."
            )
            headers[c] = new
        else:
            seen[h] = c
    return warnings
