"""Import pages: who may open them, and the whole flow in the browser's requests."""

import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import load_workbook

from capture.accounts.system import SYSTEM
from capture.imports.models import ImportMapping, ImportUpload
from capture.records.models import FormRecord

from .conftest import write_xlsx
from .test_import import HEAD


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _upload_file(client, study, path, **data):
    return client.post(
        reverse("imports:index", args=[study.slug]),
        {"file": SimpleUploadedFile(path.name, path.read_bytes()), **data},
    )


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin", 200),
        ("data_manager", 200),
        ("pi", 403),
        ("coordinator_a", 403),
        ("statistician", 403),
        ("monitor", 403),
        ("outsider", 404),
    ],
)
def test_only_data_managers_and_study_admins_may_import(
    client, trial, personas, persona, status, media, tmp_path
):
    dm_upload = ImportUpload.objects.create(
        study=trial,
        created_by=personas["data_manager"],
        original_name="x.csv",
        path="imports/x.csv",
        sha256="0",
    )
    client.force_login(personas[persona])
    assert client.get(reverse("imports:index", args=["trial"])).status_code == status
    report_url = reverse("imports:report", args=["trial", dm_upload.pk])
    assert client.get(report_url).status_code == (404 if status == 200 else status)  # no dry run yet
    path = write_xlsx(tmp_path / "p.xlsx", [HEAD])
    response = _upload_file(client, trial, path)
    assert response.status_code == (302 if status == 200 else status)


def test_an_upload_belongs_to_who_sent_it_and_study_admins(client, trial, personas, media, tmp_path):
    client.force_login(personas["data_manager"])
    _upload_file(
        client, trial, write_xlsx(tmp_path / "a.xlsx", [HEAD, ["A-0001", "F", 1, None, None, None, None]])
    )
    upload = ImportUpload.objects.get()
    url = reverse("imports:upload", args=["trial", upload.pk])
    assert client.get(url).status_code == 200
    client.force_login(personas["admin"])
    assert client.get(url).status_code == 200
    other_dm = personas["data_manager"].__class__.objects.create_user("dm2")
    from capture.studies.services import grant_role

    grant_role(actor=SYSTEM, study=trial, user=other_dm, role="data_manager")
    client.force_login(other_dm)
    assert client.get(url).status_code == 404
    assert client.get(reverse("imports:upload", args=["trial", uuid.uuid4()])).status_code == 404


def test_a_data_manager_maps_dry_runs_reads_the_report_fixes_and_imports(
    client, trial, personas, media, tmp_path, django_capture_on_commit_callbacks
):
    client.force_login(personas["data_manager"])
    path = write_xlsx(
        tmp_path / "site_a.xlsx",
        [
            ["Site A clinical export"],
            ["Subject ID", "Sex", "Age at enrolment", "Weight", "Notes"],
            ["A-0001", "F", 54, 70.5, "ok"],
            ["B-0001", "M", "sixty", 80, ""],
        ],
    )
    site_a = trial.sites.get(code="A")
    response = _upload_file(client, trial, path, site=site_a.pk)
    upload = ImportUpload.objects.get()
    page = client.get(response.url).content.decode()
    assert "Site A clinical export" in page  # the title row was read as the header: choose row 2

    base = {"sheet": "Data", "header_row": "2", "header_rows": "1", "action": "preview"}
    client.post(response.url, base)
    page = client.get(response.url).content.decode()
    assert 'name="target-2" value="demographics.age"' in page  # suggested from the question text
    assert 'value="Subject ID" selected' in page

    form = {
        **base,
        "subject_column": "Subject ID",
        "event": "baseline",
        "date_format": "auto",
        "status": "0",
        "missing_values": "n/a=NA; Unknown=UNK",
        "target-1": "demographics.sex",
        "values-1": "F=1; M=2",
        "target-2": "demographics.age",
        "target-3": "demographics.weight",
        "save_as": "Site A clinical",
        "action": "dry_run",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("imports:upload", args=["trial", upload.pk]), form)
    assert response.status_code == 302 and "/imports/jobs/" in response.url
    job_page = client.get(response.url).content.decode()
    assert "Would create" in job_page and "See the report" in job_page

    page = client.get(reverse("imports:upload", args=["trial", upload.pk])).content.decode()
    assert "Dry run: sheet “Data”" in page
    assert "Age at enrolment: &#x27;sixty&#x27; is not a whole number" in page
    assert 'value="commit"' not in page  # no import while there are problems
    assert FormRecord.objects.count() == 0

    workbook = client.get(reverse("imports:report", args=["trial", upload.pk]))
    book = load_workbook(io.BytesIO(workbook.content))
    cell = book["Data"]["C4"]
    assert (
        cell.fill.start_color.rgb.endswith("FFC7CE") and "'sixty' is not a whole number" in cell.comment.text
    )
    assert book["Problems"]["B2"].value == 4 and book["Problems"]["C2"].value == "C"

    # Fix: leave B-0001's row out of this import by mapping nothing new; here, the value map handles 'sixty'.
    form["values-2"] = "sixty=60"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imports:upload", args=["trial", upload.pk]), form)
    page = client.get(reverse("imports:upload", args=["trial", upload.pk])).content.decode()
    assert 'value="commit"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("imports:upload", args=["trial", upload.pk]), {**form, "action": "commit"}
        )
    assert "Created" in client.get(response.url).content.decode()
    assert FormRecord.objects.get(subject__subject_id="B-0001").data == {
        "sex": "2",
        "age": 60,
        "weight": 80.0,
    }
    upload.refresh_from_db()
    assert upload.state == ImportUpload.COMMITTED

    # The next file from site A starts from the saved mapping.
    saved = ImportMapping.objects.get(name="Site A clinical")
    assert saved.site == site_a and saved.spec["header_row"] == 2
    _upload_file(client, trial, path, site=site_a.pk)
    assert ImportUpload.objects.exclude(pk=upload.pk).get().mapping == saved


def test_a_corrupt_upload_shows_what_to_do(client, trial, personas, media, tmp_path):
    client.force_login(personas["data_manager"])
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    response = _upload_file(client, trial, bad)
    page = client.get(response.url).content.decode()
    assert "broken.xlsx cannot be read: it is truncated or corrupt" in page
    program = tmp_path / "tool.exe"
    program.write_bytes(b"MZ")
    response = _upload_file(client, trial, program)
    assert response.status_code == 200 and "tool.exe: Capture reads" in response.content.decode()
