"""File fields end to end in the service: an upload becomes a reference on the record and content
in the named storage; limits, the virus-scan hook and text values are refused with clear errors."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from capture.audit.models import AuditEvent
from capture.files import services as files
from capture.files.models import StoredFile
from capture.records.models import FormRecord
from capture.records.services import RecordValidationError, save_record
from tests.files.conftest import PNG, place, upload
from tests.files.scanners import EICAR

pytestmark = pytest.mark.django_db


def test_an_upload_puts_a_reference_on_the_record_and_the_content_in_storage(files_subjects, personas):
    stored = files.attach(
        actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("scan 1.png")
    )
    record = FormRecord.objects.get(subject=files_subjects["a"], form_name="documents")
    assert record.data == {"scan": "file:" + stored.id.hex}
    assert stored.name == "scan_1.png"
    assert stored.content_type == "image/png"
    assert stored.size == len(PNG)
    with files.open_content(stored) as handle:
        assert handle.read() == PNG
    event = AuditEvent.objects.filter(object_type="record", object_id=str(record.pk)).last()
    assert event.action == "record.create"
    assert event.after == {"status": 0, "data": {"scan": "file:" + stored.id.hex}}


def test_the_content_goes_through_the_named_storage(files_subjects, personas, file_storage):
    stored = files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload())
    assert (file_storage / stored.storage_name).read_bytes() == PNG


def test_a_text_value_in_a_file_field_is_refused(files_subjects, personas):
    with pytest.raises(RecordValidationError) as caught:
        save_record(
            actor=personas["admin"],
            subject=files_subjects["a"],
            event_name="baseline",
            form_name="documents",
            values={"scan": "x.png"},
        )
    assert "'x.png' is not an uploaded file" in caught.value.field_errors["scan"]


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(files_subjects, personas, settings):
    settings.CAPTURE = {**settings.CAPTURE, "FILE_MAX_BYTES": 10}
    with pytest.raises(files.FileRejectedError, match="at most 10 bytes"):
        files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload())
    assert not StoredFile.objects.exists()
    assert not FormRecord.objects.filter(subject=files_subjects["a"]).exists()


def test_a_file_type_not_allowed_is_refused_naming_the_allowed_ones(files_subjects, personas, settings):
    settings.CAPTURE = {**settings.CAPTURE, "FILE_EXTENSIONS": ["pdf", "png"]}
    with pytest.raises(
        files.FileRejectedError, match=r"type \.exe are not accepted; send one of \.pdf, \.png"
    ):
        files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("tool.exe"))
    assert not StoredFile.objects.exists()


def test_the_virus_scan_hook_refuses_an_infected_upload(files_subjects, personas, settings, file_storage):
    settings.CAPTURE = {**settings.CAPTURE, "FILE_SCANNER": "tests.files.scanners.reject_eicar"}
    with pytest.raises(files.FileRejectedError, match="Eicar-Test-Signature"):
        files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("x.txt", EICAR))
    assert not StoredFile.objects.exists()
    assert not file_storage.exists() or not any(file_storage.rglob("*.txt"))
    clean = files.attach(
        actor=personas["admin"], place=place(files_subjects["a"]), upload=upload("ok.txt", b"fine")
    )
    assert clean.name == "ok.txt"


def test_a_scanner_that_returns_a_reason_refuses_too(files_subjects, personas, settings):
    settings.CAPTURE = {**settings.CAPTURE, "FILE_SCANNER": "tests.files.scanners.reason_for_everything"}
    with pytest.raises(files.FileRejectedError, match="refused by the virus scan: scanner says no"):
        files.attach(actor=personas["admin"], place=place(files_subjects["a"]), upload=upload())


def test_replacing_and_removing_a_file_are_audited_record_changes(files_subjects, personas):
    admin = personas["admin"]
    first = files.attach(actor=admin, place=place(files_subjects["a"]), upload=upload("one.png"))
    second = files.attach(actor=admin, place=place(files_subjects["a"]), upload=upload("two.png"))
    removed = files.detach(actor=admin, place=place(files_subjects["a"]))
    assert removed == second
    record = FormRecord.objects.get(subject=files_subjects["a"], form_name="documents")
    assert "scan" not in record.data
    changes = [
        (e.before, e.after)
        for e in AuditEvent.objects.filter(object_type="record", object_id=str(record.pk)).order_by("seq")
    ]
    assert changes[1:] == [
        ({"scan": first.reference}, {"scan": second.reference}),
        ({"scan": second.reference}, {"scan": None}),
    ]
    # The old contents stay for the audit trail.
    with files.open_content(first) as handle:
        assert handle.read() == PNG


def test_a_coordinator_may_not_upload_for_another_sites_subject(files_subjects, personas):
    with pytest.raises(PermissionDenied):
        files.attach(actor=personas["coordinator_a"], place=place(files_subjects["b"]), upload=upload())
    with pytest.raises(PermissionDenied):
        files.attach(actor=personas["statistician"], place=place(files_subjects["a"]), upload=upload())
    assert not StoredFile.objects.exists()


def test_a_field_that_is_not_a_file_field_takes_no_upload(files_subjects, personas):
    with pytest.raises(Exception, match="not a file upload field"):
        files.attach(
            actor=personas["admin"], place=place(files_subjects["a"], field="consent"), upload=upload()
        )
