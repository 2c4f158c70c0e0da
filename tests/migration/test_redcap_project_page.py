"""The staff page "New study from a REDCap project": the command's files, uploaded; check first."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from capture.studies.models import Study, Subject
from tests.migration.test_redcap_own_projects import _files

PAGE = reverse("definitions:import_redcap_project")


def _post(client, **extra):
    uploads = [SimpleUploadedFile(name, data, content_type="text/csv") for name, data in _files()]
    return client.post(PAGE, {"slug": "acme", "name": "Acme", "files": uploads, **extra})


def test_staff_check_the_files_then_create_the_study(client, make_user):
    client.force_login(make_user("boss", is_staff=True))
    assert client.get(PAGE).status_code == 200
    checked = _post(client, check="on")
    assert checked.status_code == 200
    page = checked.content.decode()
    assert "dry run: nothing was written" in page and "records.csv: records (flat CSV)" in page
    assert not Study.objects.filter(slug="acme").exists()
    created = _post(client)
    assert created.status_code == 302
    assert sorted(Subject.objects.filter(study__slug="acme").values_list("subject_id", flat=True)) == [
        "AAAA",
        "a",
    ]


def test_a_bad_cell_is_listed_on_the_page_and_nothing_is_written(client, make_user):
    client.force_login(make_user("boss", is_staff=True))
    uploads = [
        SimpleUploadedFile(name, data.replace(b'"71,5"', b"heavy") if name == "records.csv" else data)
        for name, data in _files()
    ]
    response = client.post(PAGE, {"slug": "acme", "files": uploads})
    assert response.status_code == 200
    assert "column &#x27;weight&#x27;, value &#x27;heavy&#x27;" in response.content.decode()
    assert not Study.objects.filter(slug="acme").exists()


def test_only_staff_may_use_the_page(client, make_user):
    client.force_login(make_user("clerk"))
    assert client.get(PAGE).status_code == 403
