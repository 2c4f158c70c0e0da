"""The mapping page shows a file's problems and samples from facts read once, at upload (issue 16:
the page of a 10,000-row sheet read the whole file on every view). The messages are the ones the
page showed when it read the file each time, written out here by hand."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from capture.imports.models import ImportUpload
from capture.jobs.models import Job


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _upload(client, name: str, data: bytes) -> str:
    response = client.post(reverse("imports:index", args=["trial"]), {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 302, response.content.decode()[:500]
    return response.url


# Columns B and D share a header, row 3 is blank, row 4 is short (two cells), row 5 has a long note.
MESSY = (
    "Patient,Weight,Sex,Weight,Notes\n"
    "A-0001,70,F,71,first\n"
    ",,,,\n"
    "A-0002,80\n"
    "A-0003,90,M,91," + "x" * 100 + "\n"
)


def test_a_sheets_duplicate_headers_blank_and_short_rows_show_as_before(client, trial, personas, media):
    client.force_login(personas["data_manager"])
    page = client.get(_upload(client, "messy.csv", MESSY.encode())).content.decode()
    assert (
        "Columns B and D are both headed &#x27;Weight&#x27;; the second is called &#x27;Weight (D)&#x27; "
        "here. Rename one in the file if that is a mistake." in page
    )
    # Samples skip the blank row and pad the short one; a long cell is cut to 60 characters.
    assert '<td class="muted">70 · 80 · 90</td>' in page
    assert '<td class="muted">F · M</td>' in page
    assert '<td class="muted">71 · 91</td>' in page
    assert f'<td class="muted">first · {"x" * 59}…</td>' in page
    assert "Weight (D)" in page


def test_a_problem_deep_in_the_file_is_named_on_the_mapping_page(client, trial, personas, media, settings):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_CELL_CHARS": 100}
    client.force_login(personas["data_manager"])
    rows = ["Patient,Notes"] + [f"A-{n:04d},ok" for n in range(2, 300)] + ["A-0300," + "y" * 150]
    url = _upload(client, "deep.csv", "\n".join(rows).encode())
    for _ in range(2):  # the first view and a later one say the same
        page = client.get(url)
        assert page.context["table"] is None
        assert page.context["read_error"] == (
            "Sheet 'deep', row 300, column B holds a cell of 150 characters or more; the limit is 100 "
            "(Excel's own, CAPTURE['IMPORT_MAX_CELL_CHARS']). Shorten that cell or leave it out of the file."
        )


def test_too_many_rows_are_named_on_the_mapping_page(client, trial, personas, media, settings):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_ROWS": 50}
    client.force_login(personas["data_manager"])
    rows = ["Patient,Age"] + [f"A-{n:04d},54" for n in range(1, 61)]
    page = client.get(_upload(client, "long.csv", "\n".join(rows).encode())).content.decode()
    assert (
        "long.csv has more than 50 data rows, the limit (CAPTURE[&#x27;IMPORT_MAX_ROWS&#x27;]). "
        "Split the file into smaller ones." in page
    )


def test_the_mapping_page_does_not_read_the_file_again(
    client, trial, personas, media, django_capture_on_commit_callbacks
):
    """After the upload the page shows headers and samples without the file: deleted from the
    storage here, the page still renders them, and only the dry run (which reads every row) fails."""
    client.force_login(personas["data_manager"])
    rows = ["Patient,Age,Weight"] + [f"A-{n:04d},{40 + n % 30},{60 + n % 20}" for n in range(1, 2001)]
    url = _upload(client, "big.csv", "\n".join(rows).encode())
    upload = ImportUpload.objects.get()
    (Path(media) / upload.path).unlink()
    page = client.get(url).content.decode()
    assert '<td class="muted">41 · 42 · 43</td>' in page  # Age of the first three rows
    assert '<td class="muted">61 · 62 · 63</td>' in page
    assert 'name="target-2"' in page
    assert "2,000 data rows" in page
    form = {
        "action": "dry_run",
        "subject_column": "Patient",
        "event": "baseline",
        "target-1": "demographics.age",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**form, "header_row": "1", "header_rows": "1"})
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.status == Job.FAILED and "big.csv is no longer stored; upload it again." in job.error


def test_an_upload_from_before_stored_facts_reads_its_file_once(client, trial, personas, media):
    client.force_login(personas["data_manager"])
    url = _upload(client, "old.csv", b"Patient,Age\nA-0001,54\nA-0002,61\n")
    ImportUpload.objects.update(facts={})  # as an upload made before the migration
    assert '<td class="muted">54 · 61</td>' in client.get(url).content.decode()
    upload = ImportUpload.objects.get()
    assert upload.facts["headers"] == ["Patient", "Age"] and upload.facts["rows"] == 2
    (Path(media) / upload.path).unlink()
    assert '<td class="muted">54 · 61</td>' in client.get(url).content.decode()


def test_other_header_rows_are_read_once_then_kept(client, trial, personas, media):
    client.force_login(personas["data_manager"])
    url = _upload(client, "titled.csv", b"Site A export\nPatient,Age\nA-0001,54\n")
    assert "Site A export" in client.get(url).content.decode()
    client.post(url, {"action": "preview", "header_row": "2", "header_rows": "1"})
    page = client.get(url).content.decode()
    assert '<td class="muted">54</td>' in page and "1 data row" in page
    upload = ImportUpload.objects.get()
    (Path(media) / upload.path).unlink()
    assert '<td class="muted">54</td>' in client.get(url).content.decode()


def test_a_gone_file_without_stored_facts_says_so(client, trial, personas, media):
    client.force_login(personas["data_manager"])
    url = _upload(client, "gone.csv", b"Patient,Age\nA-0001,54\n")
    upload = ImportUpload.objects.get()
    ImportUpload.objects.update(facts={})
    (Path(media) / upload.path).unlink()
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["read_error"] == "gone.csv is no longer stored; upload it again."
    ImportUpload.objects.filter(pk=upload.pk, facts={}).get()  # nothing kept: the file may come back
