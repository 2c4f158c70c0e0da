"""File fields on the data-entry page (upload, download link, remove with a reason) and the
download route's answer to each persona: role, site and study decide, as for the record."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from capture.files import services as files
from capture.files.models import StoredFile
from capture.records.models import FormRecord
from tests.files.conftest import PNG, place, upload

pytestmark = pytest.mark.django_db


def entry_url(subject, event="baseline", instance=1):
    return reverse(
        "records:entry", args=[subject.study.slug, subject.subject_id, event, "documents", instance]
    )


def hidden(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def post(client, subject, data: dict, status="0"):
    page = client.get(entry_url(subject)).content.decode()
    fields = {k: v for k, v in hidden(page).items() if k.startswith("__") or k.endswith("__current")}
    return client.post(entry_url(subject), {**fields, "__status": status, "consent": "1", **data})


def test_a_file_uploaded_on_the_entry_page_is_stored_and_linked(client, personas, files_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(client, files_subjects["a"], {"scan": upload("consent form.pdf", b"%PDF-1.4 test")})
    assert response.status_code == 302
    stored = StoredFile.objects.get()
    record = FormRecord.objects.get(subject=files_subjects["a"])
    assert record.data == {"consent": "1", "scan": stored.reference}
    page = client.get(entry_url(files_subjects["a"])).content.decode()
    link = reverse("files:download", args=["docs", stored.id])
    assert f'<a href="{link}" download>consent_form.pdf</a>' in page
    assert 'name="scan__remove"' in page
    download = client.get(link)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"%PDF-1.4 test"
    assert download["Content-Type"] == 'application/pdf; name="consent_form.pdf"'


def test_saving_again_without_a_new_file_keeps_the_file(client, personas, files_subjects):
    client.force_login(personas["coordinator_a"])
    post(client, files_subjects["a"], {"scan": upload()})
    post(client, files_subjects["a"], {"seen_on": "2025-03-02"})
    record = FormRecord.objects.get(subject=files_subjects["a"])
    assert record.data["scan"] == StoredFile.objects.get().reference
    assert record.data["seen_on"] == "2025-03-02"


def test_removing_a_file_of_a_complete_form_asks_for_a_reason(client, personas, files_subjects):
    client.force_login(personas["coordinator_a"])
    post(client, files_subjects["a"], {"scan": upload()}, status="2")
    response = post(client, files_subjects["a"], {"scan__remove": "1"}, status="2")
    assert response.status_code == 200
    assert "a change needs a reason" in response.content.decode()
    assert "scan" in FormRecord.objects.get(subject=files_subjects["a"]).data
    response = post(
        client, files_subjects["a"], {"scan__remove": "1", "__reason": "wrong patient's report"}, "2"
    )
    assert response.status_code == 302
    assert "scan" not in FormRecord.objects.get(subject=files_subjects["a"]).data


def test_an_upload_past_the_limits_is_an_error_on_the_field(client, personas, files_subjects, settings):
    settings.CAPTURE = {**settings.CAPTURE, "FILE_MAX_BYTES": 4}
    client.force_login(personas["coordinator_a"])
    response = post(client, files_subjects["a"], {"scan": upload()})
    assert response.status_code == 200
    assert "a file field takes at most 4 bytes" in response.content.decode()
    assert not FormRecord.objects.exists()


def test_a_posted_reference_to_another_records_file_is_refused(client, personas, files_subjects):
    other = files.attach(actor=personas["admin"], place=place(files_subjects["b"]), upload=upload())
    client.force_login(personas["coordinator_a"])
    response = post(client, files_subjects["a"], {"scan__current": other.reference})
    assert response.status_code == 200
    assert "This is not a file of this record" in response.content.decode()
    assert not FormRecord.objects.filter(subject=files_subjects["a"]).exists()


def test_a_deidentified_page_shows_that_there_is_a_file_but_not_its_name(client, personas, files_subjects):
    stored = files.attach(
        actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("Smith_J.png")
    )
    client.force_login(personas["statistician"])
    page = client.get(entry_url(files_subjects["a"])).content.decode()
    assert "[document]" in page
    assert "Smith_J" not in page and stored.id.hex not in page


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin", 200),
        ("pi", 200),
        ("data_manager", 200),
        ("coordinator_a", 200),
        ("coordinator_b", 404),  # another site's subject: as if it did not exist
        ("statistician", 403),  # de-identified: a file may carry identifiers
        ("monitor", 403),
        ("outsider", 404),  # another study
        ("anonymous", 302),
    ],
)
def test_the_download_answers_each_persona_as_the_record_would(
    client, personas, files_subjects, persona, status
):
    stored = files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload())
    if persona != "anonymous":
        client.force_login(personas[persona])
    response = client.get(reverse("files:download", args=["docs", stored.id]))
    assert response.status_code == status
    if status == 200:
        assert b"".join(response.streaming_content) == PNG


def test_a_file_is_not_reached_through_another_studys_address(client, personas, files_subjects):
    stored = files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload())
    client.force_login(personas["admin"])  # admin of "trial" and "docs"
    assert client.get(reverse("files:download", args=["trial", stored.id])).status_code == 404
