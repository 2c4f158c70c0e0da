"""One format failing never loses the others of the same request; each is reported on its own.

The failure is a real one: Stata's value labels hold whole numbers up to 2,147,483,620, so a code
list of larger whole-number codes (SNOMED CT concept ids are such codes) cannot be written to
Stata, while CSV, Parquet and SPSS take it."""

from __future__ import annotations

import zipfile

import pytest
from django.urls import reverse

from capture.definitions.models import PermissibleValue
from capture.exports.outputs import ExportFailedError
from capture.jobs.models import Job

SNOMED_FEMALE = "248152002000"  # a whole number past Stata's value-label range


@pytest.fixture
def big_codes(records):
    PermissibleValue.objects.filter(element__public_id="capture.test_sex", code="1").update(
        code=SNOMED_FEMALE
    )
    return records


def test_a_format_that_fails_leaves_the_others_written_and_says_why(big_codes, personas, study, run_export):
    path, manifest, folder = run_export(
        personas["statistician"], study, formats=["csv", "dta", "parquet", "sav"]
    )
    names = {p.name for p in folder.iterdir()}
    assert {"dataset.csv", "dataset.parquet", "dataset.sav", "codebook.csv", "manifest.json"} <= names
    assert "dataset.dta" not in names  # a failed format leaves nothing half-written in the zip
    results = {r["format"]: r for r in manifest["format_results"]}
    assert results["csv"] == {"format": "csv", "written": True, "error": "", "files": ["dataset.csv"]}
    assert results["sav"]["written"] and results["parquet"]["written"]
    assert results["dta"]["written"] is False and results["dta"]["files"] == []
    assert results["dta"]["error"].startswith("Stata was not written (table dataset): ")
    assert "outside the range" in results["dta"]["error"]
    assert "dataset.dta" not in {f["name"] for f in manifest["files"]}
    # The codebook maps names only for the statistical formats that were written.
    with zipfile.ZipFile(path) as bundle:
        header = bundle.read("codebook.csv").decode("utf-8-sig").splitlines()[1].split(",")
    assert header[:5] == ["dataset", "subject_id", "", "subject_id", ""]


def test_the_job_succeeds_with_the_formats_written_and_reports_the_failed_one(
    client, big_codes, personas, django_capture_on_commit_callbacks
):
    client.force_login(personas["statistician"])
    data = {"layout": "wide", "formats": ["csv", "dta"], "checkboxes": "split", "date_mode": "shift"}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("exports:builder", args=["trial"]), data)
    job = Job.objects.get(kind="export")
    assert job.status == Job.SUCCEEDED, job.error
    formats = {r["format"]: r["written"] for r in job.result["formats"]}
    assert formats == {"csv": True, "dta": False}
    assert job.message.startswith("Written: CSV. Stata was not written (table dataset): ")
    page = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "Stata was not written" in page


def test_when_every_format_fails_the_export_fails_naming_each(big_codes, personas, study, run_export):
    with pytest.raises(ExportFailedError, match="No format could be written. Stata was not written"):
        run_export(personas["statistician"], study, formats=["dta"])


def test_a_full_disk_is_no_single_formats_failure(tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does: that fails the whole export
    (the job then says to free space and run it again), it is not reported as one format's error."""
    from capture.exports.outputs import Output

    def write_to_full_disk(_writer):
        with open("/dev/full", "w") as handle:  # noqa: PTH123 - a device, not a path we build
            handle.write("x" * 65536)
            handle.flush()

    out = Output("csv", writer=object())  # type: ignore[arg-type]  # run() only hands it to the action
    with pytest.raises(OSError, match="No space left"):
        out.run(write_to_full_disk, "dataset")
    assert out.ok
