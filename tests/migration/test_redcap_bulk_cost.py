"""What a migration does to stay cheap at 10,000 records (benchmarks/migration_bench.py) without
doing less: Python's cycle collector is paused while the project's rows are read, checked and
written, and handed back as it was; the records CSV is read without csv.DictReader's Python
step per row, into the rows DictReader gives."""

from __future__ import annotations

import csv
import gc
import io
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.audit.services import verify_all
from capture.migration.redcap import _csv_rows, migrate
from capture.records.bulk import collector_paused
from capture.records.models import FormRecord

from .test_redcap_own_projects import _files


@pytest.fixture
def collections():
    """The cycle collections that start while a migration reads, checks and writes the project
    (inside migration.redcap's _create); the one the collector makes when it is handed back is not."""
    seen: list[int] = []

    def callback(phase, info):
        frame = sys._getframe(1)
        while frame is not None and not (
            frame.f_code.co_name == "_create" and frame.f_code.co_filename.endswith("migration/redcap.py")
        ):
            frame = frame.f_back
        if phase == "start" and frame is not None:
            seen.append(info["generation"])

    gc.callbacks.append(callback)
    yield seen
    gc.callbacks.remove(callback)


def test_a_migration_runs_no_cycle_collection_and_gives_the_collector_back(make_user, collections):
    boss = make_user("boss", is_staff=True)
    assert gc.isenabled()
    report = migrate(user=boss, slug="acme", files=_files())
    assert report.ok, "\n".join(report.lines())
    assert collections == [], "the collector ran during the migration"
    assert gc.isenabled(), "the migration left the collector paused"
    assert FormRecord.objects.filter(subject__study=report.study).count() == 5
    assert verify_all()[1] == []


def test_a_failed_migration_gives_the_collector_back_too(make_user):
    boss = make_user("boss", is_staff=True)
    report = migrate(
        user=boss, slug="acme", files=_files(records=_files()[-1][1].decode() + "zz,nowhere,,,,,,,,,,,\n")
    )
    assert not report.ok
    assert gc.isenabled()


def test_nested_pauses_leave_the_collector_as_the_outermost_found_it():
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the inner pause ended the outer one"
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a pause turned on a collector its caller had turned off"
    finally:
        gc.enable()


CELLS = st.sampled_from(["", "x", "1,5", '"q,1"', "résolu", '"two\nlines"', " spaced "])


@given(st.lists(st.lists(CELLS, max_size=5), max_size=6), st.sampled_from(["", "\n", "\r\n"]))
@settings(max_examples=300, deadline=None)
def test_a_records_csv_is_read_as_csv_dictreader_reads_it(lines, end):
    """Blank lines skipped, a short row's missing columns None, a long row's extra values under
    None: the stdlib's reader is the expectation."""
    text = "\n".join(",".join(cells) for cells in lines) + end
    assert _csv_rows(text.encode()) == list(csv.DictReader(io.StringIO(text, newline="")))


def test_a_records_csv_with_short_long_and_blank_rows():
    text = "record_id,a,b\n1,x,y\n\n2,x\n3,x,y,z\n"
    assert _csv_rows(text.encode()) == [
        {"record_id": "1", "a": "x", "b": "y"},
        {"record_id": "2", "a": "x", "b": None},
        {"record_id": "3", "a": "x", "b": "y", None: ["z"]},
    ]
