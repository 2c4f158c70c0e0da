"""A run again after a killed export starts clean: the earlier attempt's files are removed."""

import os
import time

from capture.exports.jobs import clear_leftovers


def test_rerun_removes_the_killed_attempts_zips_and_stale_work_folders_only(tmp_path):
    job = "1234abcd-0000-4000-8000-000000000000"
    mine_partial = tmp_path / ".trial-deidentified-wide-20260101T000000Z-1234abcd.zip.partial"
    mine_complete = tmp_path / "trial-deidentified-wide-20260101T000000Z-1234abcd.zip"
    other_job = tmp_path / "trial-deidentified-wide-20260101T000000Z-99999999.zip"
    stale_work = tmp_path / ".export-old"
    live_work = tmp_path / ".export-new"
    for path in (mine_partial, mine_complete, other_job):
        path.write_bytes(b"zip")
    for folder in (stale_work, live_work):
        folder.mkdir()
        (folder / "wide.csv").write_text("a,b\n")
    an_hour_ago = time.time() - 3600
    os.utime(stale_work, (an_hour_ago, an_hour_ago))

    removed = clear_leftovers(tmp_path, job)

    assert set(removed) == {mine_partial, mine_complete, stale_work}
    assert other_job.exists(), "another job's export is not touched"
    assert live_work.exists(), "a work folder a live worker may be writing is kept"


def test_nothing_to_clear_when_the_folder_does_not_exist(tmp_path):
    assert clear_leftovers(tmp_path / "none", "1234abcd") == []
