"""Properties of DICOM header reading (capture/imaging/dicomread.py): any bytes — random, a real
header cut short, a real header with bytes flipped — give a Header or a Failure with a reason,
never an exception (a failure is listed as unreadable; it must not stop the run)."""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from capture.imaging import dicomread


def _header_bytes(name: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True, force=True)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


REAL = [_header_bytes("CT_small.dcm"), _header_bytes("MR_small.dcm")]


def _read(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.dcm"
        path.write_bytes(data)
        result = dicomread.read_header(str(path))
    assert isinstance(result, dicomread.Header | dicomread.Failure), result
    if isinstance(result, dicomread.Failure):
        assert result.reason
    else:
        assert result.study_uid and result.series_uid and result.sop_uid
    return result


@settings(max_examples=100)
@given(st.binary(max_size=1024) | st.binary(max_size=256).map(lambda b: b"\0" * 128 + b"DICM" + b))
def test_random_bytes_give_a_header_or_a_failure(data):
    _read(data)


@st.composite
def damaged(draw):
    data = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=150)
@given(damaged())
def test_a_damaged_header_gives_a_header_or_a_failure(data):
    _read(data)


def test_a_file_of_zeros_is_refused_without_being_parsed(tmp_path):
    # Found by the bad-input corpus (dicom/zip_bomb.zip): pydicom, forced, read 16 MB of zeros as
    # millions of empty elements (about 3 s per MB), so a small zip of zeros stalled an ingest.
    for name, data in (
        ("zeros.dcm", b"\0" * (8 * 2**20)),
        ("dicm.dcm", b"\0" * 128 + b"DICM" + b"\0" * (8 * 2**20)),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        started = time.monotonic()
        result = dicomread.read_header(str(path))
        assert result == dicomread.Failure(str(path), dicomread.NOT_DICOM)
        assert time.monotonic() - started < 2, "reading 8 MB of zeros took seconds: it was parsed"


def test_a_header_with_an_unknown_value_representation_is_a_failure(tmp_path):
    # Found by the damaged-header property: pydicom raises NotImplementedError for a VR it does not
    # know, which read_header did not catch, so one damaged file stopped a whole ingest.
    data = REAL[0]
    at = data.index(b"\x08\x00\x50\x00SH")  # AccessionNumber, explicit VR little endian
    path = tmp_path / "bad_vr.dcm"
    path.write_bytes(data[: at + 4] + b"S\x00" + data[at + 6 :])
    result = dicomread.read_header(str(path))
    assert isinstance(result, dicomread.Failure)
    assert "Unknown Value Representation" in result.reason


def test_a_header_whose_value_length_does_not_fit_its_vr_is_a_failure(tmp_path):
    # Found by the damaged-header property: a 1-byte UL value makes pydicom raise
    # BytesLengthException (a RuntimeError), which read_header did not catch.
    data = REAL[0]
    at = data.index(b"\x02\x00\x00\x00UL\x04\x00")  # FileMetaInformationGroupLength
    path = tmp_path / "bad_length.dcm"
    path.write_bytes(data[: at + 6] + b"\x01\x00" + data[at + 8 : at + 9] + data[at + 12 :])
    result = dicomread.read_header(str(path))
    assert isinstance(result, dicomread.Failure)
    assert "BytesLengthException" in result.reason
