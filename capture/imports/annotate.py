"""The annotated workbook (report.xlsx): the uploaded sheet with each problem cell filled red and
commented, and a Problems sheet listing every problem of the dry run.

The report is a file people open, so it holds no live formula and no external link: an .xlsx is
read with its cached values (what Capture imported, formulas replaced by their results) and without
its links to other workbooks; every text cell is stored as text, so an uploaded "=HYPERLINK(…)"
shows as typed (capture.cells explains the attack).
"""

from __future__ import annotations

import io
from pathlib import Path

from . import readers

PROBLEM_FILL = "FFC7CE"
PROBLEM_HEADERS = ["Sheet", "Row", "Column", "Header", "Value", "Problem", "Severity"]
COMMENT_LIMIT = 30000  # characters Excel keeps in a comment


def annotated_workbook(path: Path, report: dict, *, sheet: str = "", header_row: int = 1) -> bytes:
    """The original workbook with each problem cell filled red and commented, and a Problems sheet.

    An .xlsx keeps its formatting; any other file is copied cell by cell into a new workbook first."""
    book, ws = _open_book(Path(path), sheet)
    _mark_problem_cells(ws, report.get("problems", []))
    _add_problems_sheet(book, report)
    for other in book.worksheets:
        # A formula left in any sheet (an .xlsx without cached values keeps none, but a sheet could
        # still hold a text cell typed as formula) is stored as the text it is.
        for row in other.iter_rows():
            for cell in row:
                _as_text(cell)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _open_book(path: Path, sheet: str):
    """(workbook, the sheet the report marks): the .xlsx itself, or any other file copied cell by
    cell into a new workbook."""
    from openpyxl import Workbook, load_workbook

    if path.suffix.lower() in (".xlsx", ".xlsm"):
        readers.check_archive(path)
        book = load_workbook(path, data_only=True, keep_links=False, keep_vba=False)
        return book, book[sheet] if sheet and sheet in book.sheetnames else book.worksheets[0]
    table = readers.read_table(path, sheet=sheet, header_row=1, header_rows=1)
    book = Workbook()
    ws = book.active
    ws.title = (table.sheet or "Sheet1")[:31]
    for r, cells in enumerate(_raw_grid(path, sheet), 1):
        for c, value in enumerate(cells, 1):
            if value not in ("", None):
                _as_text(ws.cell(r, c, value))
    return book, ws


def _mark_problem_cells(ws, problems: list[dict]) -> None:
    """Fill each problem's cell red with the reasons as a comment; a problem of a whole row marks
    the row's first cell, one of the mapping or the file marks nothing."""
    from openpyxl.comments import Comment
    from openpyxl.styles import PatternFill

    fill = PatternFill("solid", start_color=PROBLEM_FILL, end_color=PROBLEM_FILL)
    by_cell: dict[tuple[int, str], list[str]] = {}
    for p in problems:
        if p.get("row"):
            by_cell.setdefault((p["row"], p.get("column") or "A"), []).append(p["reason"])
    for (row, letter), reasons in by_cell.items():
        cell = ws[f"{letter}{row}"]
        cell.fill = fill
        cell.comment = Comment("\n".join(reasons)[:COMMENT_LIMIT], "Capture")


def _add_problems_sheet(book, report: dict) -> None:
    from openpyxl.styles import Font

    summary = book.create_sheet("Problems")
    summary.append(PROBLEM_HEADERS)
    for cell in summary[1]:
        cell.font = Font(bold=True)
    for p in report.get("problems", []):
        summary.append(
            [p["sheet"], p["row"], p["column"], p["header"], p["value"], p["reason"], p["severity"]]
        )
        for cell in summary[summary.max_row]:
            _as_text(cell)
    if report.get("truncated"):
        summary.append(["", "", "", "", "", f"… and {report['truncated']} more problem(s) not listed", ""])


def _as_text(cell) -> None:
    """openpyxl stores a str that starts with "=" as a formula; keep it a text cell."""
    if cell.data_type == "f" and isinstance(cell.value, str):
        cell.data_type = "s"


def _raw_grid(path: Path, sheet: str) -> list[list]:
    """Every row of the sheet as read, header rows included, for copying into the report."""
    table = readers.read_table(path, sheet=sheet, header_row=1, header_rows=1)
    grid: list[list] = [list(table.headers)]
    last = 1
    for number, cells in table.rows:
        while last < number - 1:
            grid.append([])
            last += 1
        grid.append(list(cells))
        last = number
    return grid
