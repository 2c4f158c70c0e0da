"""The PDF of a form: blank for paper, one record, or every record of a subject — with the labels,
every choice (the chosen one marked), branching notes, and only the values the user may see."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from capture.files import services as files
from capture.records import pdf
from capture.records.services import save_record
from tests.files.conftest import place, upload

pytestmark = pytest.mark.django_db


def text_of(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def record(personas, subject, event="baseline", instance=1, **values):
    values = {
        "consent": "2",
        "refusal_reason": "lives too far",
        "mrn": "MRN-998877",
        "seen_on": "2025-03-04",
        **values,
    }
    return save_record(
        actor=personas["admin"],
        subject=subject,
        event_name=event,
        form_name="documents",
        values=values,
        instance=instance,
    )


def pdf_url(subject, event="baseline", instance=1):
    return reverse("files:record_pdf", args=["docs", subject.subject_id, event, "documents", instance])


def test_a_blank_form_shows_labels_every_choice_notes_and_branching(files_study):
    text = text_of(pdf.blank_pdf(files_study, ["documents"]))
    for expected in (
        "Source documents",
        "Consent signed?",
        "[ ] Signed",
        "[ ] Refused",
        "Reason for refusal",
        "Shown if [consent] = '2'",
        "Scanned pathology report",
        "PDF or image of the signed report",
        "Subject ID:",
    ):
        assert expected in text, expected
    assert "[X]" not in text


def test_a_record_pdf_marks_the_chosen_value_and_gives_the_others(client, personas, files_subjects):
    record(personas, files_subjects["a"])
    files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("path report.png"))
    client.force_login(personas["coordinator_a"])
    response = client.get(pdf_url(files_subjects["a"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    text = text_of(response.content)
    assert "[X] Refused" in text and "[ ] Signed" in text
    assert "lives too far" in text and "MRN-998877" in text and "2025-03-04" in text
    assert "path_report.png" in text
    assert "A-0001" in text


def test_a_deidentified_pdf_masks_identifiers_shifts_dates_and_hides_file_names(
    client, personas, files_subjects
):
    subject = files_subjects["a"]
    record(personas, subject)
    files.attach(actor=personas["admin"], place=place(subject), upload=upload("Smith_J.png"))
    client.force_login(personas["statistician"])
    text = text_of(client.get(pdf_url(subject)).content)
    assert "MRN-998877" not in text and "identifier hidden" in text
    assert "Smith_J" not in text and "[document]" in text
    assert "2025-03-04" not in text  # shifted by the subject's date shift
    assert "[X] Refused" in text


def test_the_subject_pdf_has_every_record_of_the_subject(client, personas, files_subjects):
    subject = files_subjects["a"]
    record(personas, subject)
    record(personas, subject, event="follow_up", consent="1", refusal_reason="")
    record(
        personas, subject, event="follow_up", instance=2, consent="1", refusal_reason="", seen_on="2025-06-01"
    )
    client.force_login(personas["data_manager"])
    text = text_of(client.get(reverse("files:subject_pdf", args=["docs", subject.subject_id])).content)
    assert text.count("Source documents") == 3
    assert "Follow-up · instance 2" in text and "2025-06-01" in text


def test_the_blank_pdf_button_gives_the_form_without_values(client, personas, files_subjects):
    record(personas, files_subjects["a"])
    client.force_login(personas["coordinator_a"])
    text = text_of(client.get(pdf_url(files_subjects["a"]) + "?blank=1").content)
    assert "Consent signed?" in text and "lives too far" not in text


def test_the_entry_page_has_a_pdf_button(client, personas, files_subjects):
    client.force_login(personas["coordinator_a"])
    page = client.get(
        reverse("records:entry", args=["docs", "A-0001", "baseline", "documents", 1])
    ).content.decode()
    assert f'id="pdf" href="{pdf_url(files_subjects["a"])}"' in page


@pytest.mark.parametrize(
    ("persona", "status"), [("coordinator_b", 404), ("outsider", 404), ("anonymous", 302)]
)
def test_a_pdf_of_a_subject_the_user_does_not_see_is_refused(
    client, personas, files_subjects, persona, status
):
    record(personas, files_subjects["a"])
    if persona != "anonymous":
        client.force_login(personas[persona])
    assert client.get(pdf_url(files_subjects["a"])).status_code == status
    assert client.get(reverse("files:subject_pdf", args=["docs", "A-0001"])).status_code == status
