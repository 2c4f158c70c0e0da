"""PyCap, unchanged, against a live Capture: export_file / import_file / delete_file and export_pdf,
importRecords refusing text in a file field, and who may read a file. PyCap reports every
import_file and delete_file as a success whatever the server says, so these tests check what the
server did, and read the error answers with requests."""

from __future__ import annotations

import io

import pytest
import requests
from pypdf import PdfReader
from redcap import Project, RedcapError
from redcap import request as redcap_request

from capture.api.tokens import create_redcap_token
from capture.files.models import StoredFile
from capture.records.models import FormRecord
from tests.files.conftest import PNG

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def url(live_server, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield f"{live_server.url}/redcap/api/"
    redcap_request._session.close()


@pytest.fixture
def tokens(files_study, personas):
    return {
        name: create_redcap_token(user=user, study=files_study)[1]
        for name, user in personas.items()
        if name != "outsider"
    }


def project(url, tokens, persona: str = "admin") -> Project:
    return Project(url, tokens[persona])


def _upload(proj: Project, record: str = "A-0001", name: str = "report.png", content: bytes = PNG):
    return proj.import_file(record, "scan", name, io.BytesIO(content), event="baseline_arm_1")


@pytest.mark.redcap("file", "import")
@pytest.mark.redcap("file", "export")
@pytest.mark.redcap("file", "delete")
def test_pycap_imports_exports_and_deletes_a_file(url, tokens, files_subjects):
    proj = project(url, tokens)
    _upload(proj)
    record = FormRecord.objects.get(subject=files_subjects["a"], event__name="baseline")
    assert record.data["scan"].startswith("file:")
    content, meta = proj.export_file("A-0001", "scan", event="baseline_arm_1")
    assert content == PNG
    assert meta["name"] == "report.png"
    rows = proj.export_records(records=["A-0001"], fields=["scan"])
    assert rows[0]["scan"] == "[document]"
    proj.delete_file("A-0001", "scan", event="baseline_arm_1")
    record.refresh_from_db()
    assert "scan" not in record.data
    with pytest.raises(RedcapError, match="There is no file to download"):
        proj.export_file("A-0001", "scan", event="baseline_arm_1")


def test_a_file_on_a_repeating_instance_goes_to_that_instance(url, tokens, files_subjects):
    proj = project(url, tokens)
    proj.import_file("A-0001", "scan", "two.png", io.BytesIO(PNG), event="follow_up_arm_1", repeat_instance=2)
    record = FormRecord.objects.get(subject=files_subjects["a"], event__name="follow_up")
    assert record.instance == 2
    content, meta = proj.export_file("A-0001", "scan", event="follow_up_arm_1", repeat_instance=2)
    assert (content, meta["name"]) == (PNG, "two.png")


def test_import_records_refuses_a_text_value_in_a_file_field(url, tokens, files_subjects):
    proj = project(url, tokens)
    with pytest.raises(RedcapError, match="not an uploaded file"):
        proj.import_records([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "scan": "x.png"}])
    assert not FormRecord.objects.filter(subject=files_subjects["a"]).exists()


def test_an_exported_row_imports_back_without_losing_its_file(url, tokens, files_subjects):
    proj = project(url, tokens)
    _upload(proj)
    rows = proj.export_records(records=["A-0001"], forms=["documents"])
    rows[0]["refusal_reason"] = ""
    rows[0]["consent"] = "1"
    assert proj.import_records(rows) == {"count": 1}
    record = FormRecord.objects.get(subject=files_subjects["a"], event__name="baseline")
    assert record.data["consent"] == "1"
    assert record.data["scan"] == StoredFile.objects.get().reference


def test_file_errors_answer_in_redcaps_format(url, tokens, files_subjects):
    base = {"token": tokens["admin"], "content": "file", "record": "A-0001", "event": "baseline_arm_1"}
    answer = requests.post(url, data={**base, "action": "import", "field": "scan"}, timeout=30)
    assert answer.status_code == 400
    assert "<error>" in answer.text and "No file was uploaded" in answer.text
    answer = requests.post(
        url,
        data={**base, "action": "import", "field": "consent", "returnFormat": "json"},
        files={"file": ("a.png", PNG)},
        timeout=30,
    )
    assert answer.json() == {"error": "The field 'consent' is not a file upload field."}
    answer = requests.post(
        url,
        data={**base, "action": "import", "field": "scan", "returnFormat": "json"},
        files={"file": ("tool.exe", b"MZ")},
        timeout=30,
    )
    assert answer.status_code == 400
    assert "files of type .exe are not accepted" in answer.json()["error"]
    assert not StoredFile.objects.exists()


@pytest.mark.parametrize(
    ("persona", "message"),
    [
        ("statistician", "de-identified"),  # sees the study, not files: they may hold identifiers
        ("monitor", "de-identified"),
        ("coordinator_b", "does not exist"),  # site A's record is not theirs to see
    ],
)
def test_who_may_not_read_a_file_is_refused(url, tokens, files_subjects, persona, message):
    _upload(project(url, tokens))
    with pytest.raises(RedcapError, match=message):
        project(url, tokens, persona).export_file("A-0001", "scan", event="baseline_arm_1")


def test_a_coordinator_reads_files_of_their_own_site(url, tokens, files_subjects):
    _upload(project(url, tokens))
    content, _ = project(url, tokens, "coordinator_a").export_file("A-0001", "scan", event="baseline_arm_1")
    assert content == PNG


def test_another_studys_token_cannot_reach_the_file(url, tokens, files_subjects, other_study, personas):
    _upload(project(url, tokens))
    _, other_token = create_redcap_token(user=personas["outsider"], study=other_study)
    # PyCap itself stops here (the other study has no file field), so the request is sent by hand.
    answer = requests.post(
        url,
        data={
            "token": other_token,
            "content": "file",
            "action": "export",
            "record": "A-0001",
            "field": "scan",
        },
        timeout=30,
    )
    assert answer.status_code == 400
    assert "does not exist" in answer.text
    assert PNG not in answer.content


@pytest.mark.redcap("pdf", "export")
def test_pycap_exports_a_pdf_blank_and_with_a_record(url, tokens, files_subjects):
    proj = project(url, tokens)
    proj.import_records(
        [
            {
                "record_id": "A-0001",
                "redcap_event_name": "baseline_arm_1",
                "consent": "2",
                "refusal_reason": "travel",
            }
        ]
    )
    blank, meta = proj.export_pdf(instrument="documents")
    assert meta["name"].endswith(".pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(blank)).pages)
    assert "Consent signed?" in text and "Signed" in text and "Refused" in text
    assert "Shown if [consent] = '2'" in text
    filled, _ = proj.export_pdf(record="A-0001", event="baseline_arm_1", instrument="documents")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(filled)).pages)
    assert "[X] Refused" in text and "[ ] Signed" in text
    assert "travel" in text
