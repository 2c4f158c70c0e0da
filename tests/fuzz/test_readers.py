"""Properties of the spreadsheet readers (capture/imports/readers.py): whatever the bytes and the
reading options, `read_table` returns a Table or raises ReadError (its one documented error,
whose message the upload page shows) — never another exception."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.imports import readers


def _workbook() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in [["Subject", "Age", "Visit"], ["A-0001", 54, "2025-01-02"], ["A-0002", None, "=1+1"]]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


WORKBOOK = _workbook()


def _read(data: bytes, suffix: str, **options):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            table = readers.read_table(path, **options)
        except readers.ReadError as error:
            assert str(error), "a ReadError must say what is wrong"
            return None
    assert len(table.headers) == max((len(cells) for _, cells in table.rows), default=len(table.headers))
    return table


@st.composite
def mutated(draw, original: bytes):
    """The bytes with a few flipped, cut short, or both (a damaged download)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=120)
@given(st.binary(max_size=2048), st.sampled_from([".csv", ".xlsx", ".xls", ".ods", ".tsv", ".txt"]))
def test_random_bytes_read_as_a_table_or_a_read_error(data, suffix):
    _read(data, suffix)


@settings(max_examples=120)
@given(mutated(WORKBOOK), st.sampled_from([".xlsx", ".ods", ".xls"]))
def test_a_damaged_workbook_reads_as_a_table_or_a_read_error(data, suffix):
    _read(data, suffix)


CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ['"', '""', '"a,b"', "\r", "\n", "\r\n", ";", "\t", "|", "\ufeff", "\x00"]
)


@settings(max_examples=150)
@given(
    st.lists(st.lists(CELL, max_size=6), max_size=8),
    st.sampled_from([",", ";", "\t", "|", ", "]),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]),
    st.fixed_dictionaries(
        {
            "delimiter": st.sampled_from(["", ",", ";", "\\t", "|", "ab", "\n", '"']),
            "encoding": st.sampled_from(["", "utf-8", "cp1252", "utf-16", "no-such-codec"]),
            "header_row": st.integers(1, 4),
            "header_rows": st.integers(1, 3),
        }
    ),
)
def test_random_csv_text_reads_as_a_table_or_a_read_error(rows, joiner, encoding, options):
    text = "\n".join(joiner.join(cells) for cells in rows)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    _read(data, ".csv", **options)


def test_a_non_text_csv_is_refused_not_guessed(tmp_path):
    # Found by the corpus (binary_named.csv) and the random-bytes property: bytes undefined in cp1252 (0x81, 0x8D, …) made the
    # "cp1252 never fails" fallback raise UnicodeDecodeError, a 500 on the upload page.
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Subject,Age\nA-0001,\x81\x8d\n")
    try:
        readers.read_table(path)
    except readers.ReadError as error:
        assert "neither UTF-8 nor Windows-1252" in str(error)
    else:
        raise AssertionError("a file that is neither UTF-8 nor cp1252 must be refused")


def test_a_utf16_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "unicode.csv"
    path.write_bytes("Subject,Name\nA-0001,José\n".encode("utf-16"))
    table = readers.read_table(path)
    assert table.headers == ["Subject", "Name"]
    assert table.rows == [(2, ["A-0001", "José"])]


def test_a_delimiter_of_several_characters_is_a_read_error_not_a_crash(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n")
    try:
        readers.read_table(path, delimiter="ab")
    except readers.ReadError as error:
        assert "cannot separate columns" in str(error)
    else:
        raise AssertionError("a two-character delimiter must be refused")
