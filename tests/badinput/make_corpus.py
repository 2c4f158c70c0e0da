"""Write the bad-input corpus under tests/badinput/corpus/: small malformed files of our own.

Run it again after changing a generator: `.venv/bin/python tests/badinput/make_corpus.py`.
Every file is deterministic (fixed bytes, fixed zip timestamps), so a re-run changes nothing
unless a generator changed. Each folder is named after the entry point its files go to:

  spreadsheets/  the import upload page, `manage.py import_spreadsheet`
  redcap/        REDCap data dictionaries: the definitions upload pages, `import_redcap_dictionary`
  xml/           caDSR and ODM XML: the definitions upload pages, `import_cadsr`, `import_odm`
  dicom/         DICOM files and zips: the imaging zip upload, `manage.py ingest_dicom`
  json/          bodies for the REST API and the REDCap-compatible endpoint

What each file is meant to provoke is in CORPUS_NOTES (and in tests/badinput/test_corpus.py).
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "corpus"
# 1980-01-01, zip's epoch: members carry no build time, so re-running gives the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
    b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00"
    b"IEND\xaeB`\x82"
)


def _zip(members: list[tuple[str, bytes]], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _xlsx(rows: list[list], *, formulas: bool = False) -> bytes:
    """A small workbook written by openpyxl (formulas are saved without a cached result)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Data"
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return _normalise_zip(out.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """The same archive with fixed member timestamps (openpyxl stamps the build time)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    members = [(info.filename, source.read(info)) for info in source.infolist()]
    # docProps/core.xml carries created/modified times; pin them.
    fixed = []
    for name, body in members:
        if name == "docProps/core.xml":
            import re

            body = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2025-01-01T00:00:00Z", body)
        fixed.append((name, body))
    return _zip(fixed)


def _encrypted_xlsx(plain: bytes) -> bytes:
    """The workbook encrypted with a password, as Excel's "Encrypt with Password" writes it."""
    import msoffcrypto
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt("secret", out)
    assert msoffcrypto.olefile.isOleFile(io.BytesIO(out.getvalue()))
    return out.getvalue()


def spreadsheets() -> dict[str, bytes]:
    good = _xlsx([["Subject", "Age"], ["NOPE-0001", 54], ["NOPE-0002", 61]])
    return {
        "truncated.xlsx": good[: len(good) // 2],
        "zero_bytes.xlsx": b"",
        "zero_bytes.csv": b"",
        "png_named.xlsx": PNG,
        "password_protected.xlsx": _encrypted_xlsx(good),
        "zip_not_a_workbook.xlsx": _zip([("hello.txt", b"not a workbook")]),
        "no_rows.xlsx": _xlsx([]),
        "formula_cells.xlsx": _xlsx(
            [["Subject", "Age"], ["NOPE-0001", "=40+14"], ['=CONCAT("A-","0001")', 5]]
        ),
        "huge_cell.xlsx": _xlsx([["Subject", "Age"], ["NOPE-0001", "9" * 40_000]]),
        "latin1.csv": "Subject;Age;Name\nNOPE-0001;54;Jos\u00e9 M\u00fcller\n".encode("cp1252"),
        "utf16.csv": "Subject,Age\nNOPE-0001,54\n".encode("utf-16"),
        "binary_named.csv": bytes(range(256)) * 4,
        "workbook_named.csv": good,
        "ragged.csv": b"Subject,Age,Weight\nNOPE-0001,54\nNOPE-0002,61,70,extra,cells\n,\n",
        "header_only.csv": b"Subject,Age\n",
        "huge_cell.csv": b"Subject,Age\nNOPE-0001," + b"9" * 200_000 + b"\n",
        "unterminated_quote.csv": b'Subject,Age\nNOPE-0001,"54\nNOPE-0002,61\n',
        "wrong_type.pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
    }


REDCAP_HEADER = (
    '"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    '"Choices, Calculations, OR Slider Labels","Field Note","Text Validation Type OR Show Slider Number",'
    '"Text Validation Min","Text Validation Max",Identifier?,"Branching Logic (Show field only if...)",'
    '"Required Field?","Custom Alignment","Question Number (surveys only)","Matrix Group Name",'
    '"Matrix Ranking?","Field Annotation"\n'
)


def _dictionary(*rows: str) -> bytes:
    return (REDCAP_HEADER + "".join(r + "\n" for r in rows)).encode("utf-8")


RECORD_ID = 'record_id,demo,,text,"Record ID",,,,,,,,,,,,,'


def redcap() -> dict[str, bytes]:
    return {
        "wrong_columns.csv": b"name,type,question\nage,integer,How old?\n",
        "missing_header.csv": (RECORD_ID + "\n" + 'age,demo,,text,"Age",,,integer,0,120,,,,,,,,\n').encode(),
        "bad_choice_syntax.csv": _dictionary(
            RECORD_ID, 'sex,demo,,radio,"Sex","1 Female | 2 Male",,,,,,,,,,,,'
        ),
        "duplicate_choice_codes.csv": _dictionary(
            RECORD_ID, 'sex,demo,,dropdown,"Sex","1, Female | 1, Male",,,,,,,,,,,,'
        ),
        "unbalanced_branching.csv": _dictionary(
            RECORD_ID,
            'age,demo,,text,"Age",,,integer,0,120,,,,,,,,',
            'smoker,demo,,yesno,"Smoker",,,,,,,"([age] > 18",,,,,,',
            'packs,demo,,text,"Packs",,,integer,,,,"[smoker = \'1\'",,,,,,',
        ),
        "deeply_nested_branching.csv": _dictionary(
            RECORD_ID,
            'age,demo,,text,"Age",,,integer,0,120,,,,,,,,',
            f'smoker,demo,,yesno,"Smoker",,,,,,,"{"not " * 3000}[age] > 18",,,,,,',
        ),
        "bad_field_names.csv": _dictionary(
            RECORD_ID,
            '1st visit,demo,,text,"First",,,,,,,,,,,,,',
            'age,demo,,text,"Age",,,integer,abc,x,,,,,,,,',
        ),
        "unknown_field_type.csv": _dictionary(RECORD_ID, 'age,demo,,hologram,"Age",,,,,,,,,,,,,'),
        "zero_bytes.csv": b"",
        "header_only.csv": REDCAP_HEADER.encode(),
        "binary.csv": bytes(range(256)) * 4,
        "xlsx_not_csv.csv": _xlsx([["Variable / Field Name", "Form Name"], ["age", "demo"]]),
    }


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<DataElementsList><DataElement><LONGNAME>&lol9;</LONGNAME></DataElement></DataElementsList>
"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE ODM [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" FileOID="x" FileType="Snapshot" CreationDateTime="2025-01-01T00:00:00">
 <Study OID="S"><GlobalVariables><StudyName>&xxe;</StudyName><StudyDescription>x</StudyDescription>
 <ProtocolName>x</ProtocolName></GlobalVariables></Study></ODM>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE DataElementsList SYSTEM "http://127.0.0.1:9/cadsr.dtd">
<DataElementsList><DataElement><PUBLICID>1</PUBLICID></DataElement></DataElementsList>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>
<DataElementsList/>
"""

XINCLUDE = b"""<?xml version="1.0"?>
<DataElementsList xmlns:xi="http://www.w3.org/2001/XInclude">
 <DataElement><LONGNAME><xi:include href="file:///etc/passwd" parse="text"/></LONGNAME></DataElement>
</DataElementsList>
"""


def xml() -> dict[str, bytes]:
    return {
        "not_well_formed.xml": b"<?xml version='1.0'?><DataElementsList><DataElement><PUBLICID>1</DataElement>",
        "billion_laughs.xml": BILLION_LAUGHS,
        "xxe_file.xml": XXE_FILE,
        "external_dtd.xml": EXTERNAL_DTD,
        "parameter_entity.xml": PARAMETER_ENTITY,
        "xinclude.xml": XINCLUDE,
        "deep_nesting.xml": b"<a>" * 5000 + b"</a>" * 5000,
        "zero_bytes.xml": b"",
        "no_elements.xml": b"<?xml version='1.0'?><DataElementsList/>",
        "wrong_root.xml": b"<?xml version='1.0'?><html><body>not caDSR</body></html>",
        "odm_without_study.xml": (
            b'<?xml version="1.0"?><ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" FileOID="x" '
            b'FileType="Snapshot" CreationDateTime="2025-01-01T00:00:00"/>'
        ),
        "binary.xml": bytes(range(256)) * 4,
    }


def _ct_small() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).read_bytes()


def _without_uids() -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_ct_small()), stop_before_pixels=True)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _lying_sizes(data: bytes, declared: int) -> bytes:
    """The zip with its only member's uncompressed size rewritten to `declared` (a header that lies)."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    struct.pack_into("<I", out, local + 22, declared)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, declared)
    return bytes(out)


def _encrypted_flag(data: bytes) -> bytes:
    """The zip with its members marked encrypted (general-purpose flag bit 0), as a password zip is."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        while at >= 0:
            flags = struct.unpack_from("<H", out, at + offset)[0]
            struct.pack_into("<H", out, at + offset, flags | 1)
            at = out.find(signature, at + 4)
    return bytes(out)


def _corrupt_member(data: bytes) -> bytes:
    """The zip with a byte of its compressed data flipped (a damaged download)."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", out, local + 26)
    start = local + 30 + name_len + extra_len
    out[start + 10] ^= 0xFF
    return bytes(out)


def _ct_header() -> bytes:
    """CT_small without its pixel data: a valid DICOM header in 6 KB."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_ct_small()), stop_before_pixels=True)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _unknown_vr(header: bytes) -> bytes:
    """AccessionNumber's value representation damaged from SH to 'S\\0', which pydicom does not know."""
    at = header.index(b"\x08\x00\x50\x00SH")
    return header[: at + 4] + b"S\x00" + header[at + 6 :]


def _bad_value_length(header: bytes) -> bytes:
    """The file meta group length (UL, 4 bytes) declared and stored as 1 byte."""
    at = header.index(b"\x02\x00\x00\x00UL\x04\x00")
    return header[: at + 6] + b"\x01\x00" + header[at + 8 : at + 9] + header[at + 12 :]


def dicom() -> dict[str, bytes]:
    ct = _ct_header()
    ct_zip = _zip([("series/ct.dcm", ct)])
    return {
        "truncated.dcm": ct[:700],
        "not_dicom.dcm": b"This is a text file someone named .dcm\n",
        "zero_bytes.dcm": b"",
        "missing_uids.dcm": _without_uids(),
        "unknown_vr.dcm": _unknown_vr(ct),
        "bad_value_length.dcm": _bad_value_length(ct),
        "preamble_only.dcm": b"\0" * 128 + b"DICM",
        "path_traversal.zip": _zip([("../../x.dcm", ct)]),
        "absolute_path.zip": _zip([("/tmp/capture-absolute.dcm", ct)]),  # noqa: S108 - an entry name, not a file we write
        "zip_bomb.zip": _zip([("zeros.dcm", b"\0" * (16 * 1024 * 1024))]),
        "lying_sizes.zip": _lying_sizes(_zip([("zeros.dcm", b"\0" * 200_000)]), 1000),
        "encrypted.zip": _encrypted_flag(ct_zip),
        "corrupt_member.zip": _corrupt_member(ct_zip),
        "truncated.zip": ct_zip[: len(ct_zip) // 2],
        "png_named.zip": PNG,
        "empty.zip": _zip([]),
        "only_junk.zip": _zip([("notes.txt", b"no images here"), ("truncated.dcm", ct[:700])]),
        "wrong_type.tar": b"not a zip",
    }


def json_bodies() -> dict[str, bytes]:
    return {
        "malformed.json": b'{"values": {"age": 54,}',
        "not_an_object.json": b'"just a string"',
        "list_of_numbers.json": b"[1, 2, 3]",
        "wrong_types.json": b'{"values": ["age", 54], "status": "done", "version": "latest"}',
        "nan.json": b'{"values": {"age": NaN}, "status": 0}',
        "huge_integer.json": b'{"values": {"age": ' + b"9" * 5000 + b'}, "status": 0}',
        "deep_nesting.json": b"[" * 100_000 + b"]" * 100_000,
        "huge_string.json": b'{"values": {"initials": "' + b"x" * 1_000_000 + b'"}, "status": 0}',
        "many_keys.json": b'{"values": {'
        + b",".join(b'"k%d": %d' % (i, i) for i in range(20_000))
        + b'}, "status": 0}',
        "invalid_utf8.json": b'{"values": {"initials": "\xff\xfe"}, "status": 0}',
    }


# Files too large to commit: build() writes them and corpus/.gitignore keeps them out of git.
LARGE = {
    "spreadsheets/huge_cell.csv",
    "json/huge_string.json",
    "json/many_keys.json",
    "json/huge_integer.json",
    "json/deep_nesting.json",
}

CORPUS = {
    "spreadsheets": spreadsheets,
    "redcap": redcap,
    "xml": xml,
    "dicom": dicom,
    "json": json_bodies,
}


def build(root: Path = HERE, *, refresh: bool = False) -> list[Path]:
    """Write the corpus files that are missing (the tests call this for the large, uncommitted
    ones); `refresh` rewrites every file whose content differs (run this script to regenerate).
    Some files are not byte-stable (an encrypted workbook has a random salt), so a test run must
    not rewrite committed files."""
    written = []
    root.mkdir(parents=True, exist_ok=True)
    ignore = "# Written by tests/badinput/make_corpus.py when the tests run; too large to commit.\n"
    ignore += "".join(f"/{name}\n" for name in sorted(LARGE))
    if not (root / ".gitignore").exists() or (root / ".gitignore").read_text() != ignore:
        (root / ".gitignore").write_text(ignore)
    for folder, make in CORPUS.items():
        target = root / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            path = target / name
            if not path.exists() or (refresh and path.read_bytes() != data):
                path.write_bytes(data)
            written.append(path)
    return written


if __name__ == "__main__":
    paths = build(refresh=True)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {total / 1024:.0f} KiB, under {HERE}")
