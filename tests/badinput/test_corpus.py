"""Every file of the bad-input corpus through the real entry points: the web upload pages (as a
logged-in user with the right role), the management commands and the APIs.

Each must end in a 4xx, or a page or job that names the problem — never a 500 or an uncaught
exception (the test client re-raises them) — and must leave no new clinical or definition rows
behind. What each file must be told is in the tables below (a regex, matched case-insensitively).
Upload bookkeeping (ImportUpload, Job rows) is not counted: it is where the message is kept.
"""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from capture.api import tokens
from capture.audit.models import AuditEvent
from capture.definitions.models import DataElement, FormDefinition, PermissibleValue, Schedule
from capture.imaging import ingest
from capture.imaging.models import ImagingInstance, ImagingSeries, ImagingStudy, SourceIdentifier
from capture.imports.models import ImportMapping
from capture.jobs.models import Job
from capture.records.models import FormRecord
from capture.studies.models import Membership, Site, Study, Subject

from . import make_corpus

CORPUS = make_corpus.HERE
INTERNAL = "An internal error"

# Rows that bad input must never create.
COUNTED = [
    FormRecord,
    Subject,
    Study,
    Site,
    Membership,
    ImagingStudy,
    ImagingSeries,
    ImagingInstance,
    SourceIdentifier,
    DataElement,
    PermissibleValue,
    FormDefinition,
    Schedule,
    ImportMapping,
    AuditEvent,
]


@pytest.fixture(scope="session", autouse=True)
def _corpus():
    make_corpus.build()  # writes the large files kept out of git; the others are unchanged


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def counts(exclude_audit_actions: tuple[str, ...] = ()) -> dict[str, int]:
    found = {model.__name__: model.objects.count() for model in COUNTED}
    found["AuditEvent"] = AuditEvent.objects.exclude(action__in=exclude_audit_actions).count()
    return found


def files(folder: str, *suffixes: str) -> list[str]:
    names = make_corpus.CORPUS[folder]().keys()
    return sorted(n for n in names if not suffixes or n.endswith(suffixes))


def corpus_path(folder: str, name: str) -> Path:
    return CORPUS / folder / name


def upload(folder: str, name: str, *, as_name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(as_name or name, corpus_path(folder, name).read_bytes())


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode("utf-8", "replace")))


def assert_says(text: str, pattern: str, where: str) -> None:
    assert re.search(pattern, text, re.IGNORECASE | re.DOTALL), (
        f"{where}: expected a message matching {pattern!r}; got: {text[:3000]}"
    )


def assert_unchanged(before: dict, where: str, exclude_audit_actions: tuple[str, ...] = ()) -> None:
    after = counts(exclude_audit_actions)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"{where} wrote rows (model: before, after): {changed}"


def finished_job(where: str) -> Job:
    job = Job.objects.order_by("-created_at").first()
    assert job is not None, f"{where}: no job was started"
    assert job.status in (Job.FAILED, Job.SUCCEEDED), f"{where}: job left {job.status}"
    assert not job.error.startswith(INTERNAL), f"{where}: the job crashed (see the log): {job.error}"
    return job


# ------------------------------------------------------------------------------ spreadsheets

SPREADSHEETS = {
    "truncated.xlsx": r"truncated or corrupt",
    "zero_bytes.xlsx": r"is empty",
    "zero_bytes.csv": r"is empty",
    "png_named.xlsx": r"not a valid workbook",
    "password_protected.xlsx": r"password-protected",
    "zip_not_a_workbook.xlsx": r"truncated or corrupt",
    "no_rows.xlsx": r"has 0 row\(s\)",
    "formula_cells.xlsx": r"NOPE-0001",
    "huge_cell.xlsx": r"NOPE-0001",
    "latin1.csv": r"NOPE-0001",
    "utf16.csv": r"NOPE-0001",
    "binary_named.csv": r"not a text file",
    "workbook_named.csv": r"is a workbook, not a CSV file",
    "ragged.csv": r"NOPE-0001",
    "header_only.csv": r"no data rows below the header",
    "huge_cell.csv": r"not valid CSV|field larger than|holds a cell of",
    "unterminated_quote.csv": r"NOPE-0001",
    "wrong_type.pdf": r"Capture reads",
}


def test_the_spreadsheet_table_covers_the_whole_corpus_folder():
    assert set(SPREADSHEETS) == set(files("spreadsheets"))


def _commit_post(headers: list[str]) -> dict:
    """A mapping that commits: the first column is the subject, the second demographics' age."""
    post = {
        "action": "commit",
        "subject_column": headers[0],
        "event": "baseline",
        "date_format": "auto",
        "header_row": "1",
        "header_rows": "1",
    }
    if len(headers) > 1:
        post["target-1"] = "demographics.age"
    return post


@pytest.mark.parametrize("name", sorted(SPREADSHEETS))
def test_a_bad_spreadsheet_upload_is_refused_with_its_reason(
    client, personas, subjects, django_capture_on_commit_callbacks, name
):
    client.force_login(personas["data_manager"])
    before = counts()
    index = reverse("imports:index", args=["trial"])
    response = client.post(index, {"file": upload("spreadsheets", name)})
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:  # refused by the upload form
        assert_says(text_of(response), SPREADSHEETS[name], f"upload of {name}")
        assert_unchanged(before, name)
        return
    page = client.get(response["Location"])
    assert page.status_code == 200
    table = page.context["table"]
    if table is None:  # unreadable: the mapping page says why
        assert_says(page.context["read_error"], SPREADSHEETS[name], f"mapping page of {name}")
        assert_says(text_of(page), SPREADSHEETS[name], f"mapping page of {name}")
    else:  # readable: a commit with a plain mapping must be refused, naming the problem
        with django_capture_on_commit_callbacks(execute=True):  # the import job runs on commit
            committed = client.post(response["Location"], _commit_post(table.headers))
        assert committed.status_code in (200, 302)
        if committed.status_code == 200:
            assert_says(" ".join(committed.context["errors"]), SPREADSHEETS[name], f"mapping of {name}")
        else:
            job = finished_job(name)
            assert job.status == Job.FAILED, f"{name} was imported: {job.result}"
            assert_says(job.error, SPREADSHEETS[name], f"commit of {name}")
            assert client.get(committed["Location"]).status_code == 200
    assert_unchanged(before, name)


@pytest.mark.parametrize("name", sorted(SPREADSHEETS))
def test_import_spreadsheet_refuses_a_bad_file_with_its_reason(personas, subjects, tmp_path, name):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "subject_column": "Subject",
                "event": "baseline",
                "columns": [{"column": "Age", "form": "demographics", "item": "age"}],
            }
        )
    )
    before = counts()
    with pytest.raises(CommandError) as refused:
        call_command(
            "import_spreadsheet",
            str(corpus_path("spreadsheets", name)),
            study="trial",
            user="data_manager",
            mapping_file=mapping,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert_says(str(refused.value), SPREADSHEETS[name] + r"|Subject|problem", f"import_spreadsheet {name}")
    assert_unchanged(before, name)


def test_an_upload_over_the_size_limit_is_refused_before_it_is_kept(client, personas, settings, subjects):
    settings.CAPTURE = {**settings.CAPTURE, "IMPORT_MAX_BYTES": 1000}
    client.force_login(personas["data_manager"])
    before = counts()
    big = SimpleUploadedFile("big.csv", b"Subject,Age\n" + b"A-0001,54\n" * 200)
    response = client.post(reverse("imports:index", args=["trial"]), {"file": big})
    assert response.status_code == 200
    assert_says(text_of(response), r"larger than the 0 MB limit|IMPORT_MAX_BYTES", "oversized upload")
    assert not list((Path(settings.MEDIA_ROOT) / "imports").rglob("*.csv"))
    assert_unchanged(before, "oversized upload")


# ------------------------------------------------------------------------------ definitions

REDCAP = {
    "wrong_columns.csv": r"unknown column 'name'",
    "missing_header.csv": r"unknown column 'record_id'|the header lacks",
    "bad_choice_syntax.csv": r"is not 'code, label'",
    "duplicate_choice_codes.csv": r"choice codes repeat: 1",
    "unbalanced_branching.csv": r"cannot read .*\(\[age\] > 18",
    "deeply_nested_branching.csv": r"nested too deeply",
    "bad_field_names.csv": r"1st visit",
    "unknown_field_type.csv": r"hologram",
    "zero_bytes.csv": r"the file is empty|the submitted file is empty",
    "header_only.csv": r"a header but no fields",
    "binary.csv": r"unknown column|the header lacks",
    "xlsx_not_csv.csv": r"unknown column|the header lacks|not a CSV",
}
# Warnings only: the converter keeps the expression as written (docs/interop.md), so the preview
# may be confirmed; every other file has errors, and its preview offers no confirmation.
WARNING_ONLY = {"unbalanced_branching.csv"}

XML = {
    "not_well_formed.xml": r"not well-formed",
    "billion_laughs.xml": r"DOCTYPE",
    "xxe_file.xml": r"DOCTYPE",
    "external_dtd.xml": r"DOCTYPE",
    "parameter_entity.xml": r"DOCTYPE",
    "xinclude.xml": r"no (caDSR )?data element|no DataElement|not|public id",
    "deep_nesting.xml": r"not well-formed|depth|nested",
    "zero_bytes.xml": r"the submitted file is empty|not well-formed",
    "no_elements.xml": r"no (caDSR )?data element|no DataElement|nothing|not",
    "wrong_root.xml": r"html|not|no ",
    "odm_without_study.xml": r"Study|MetaDataVersion|not",
    "binary.xml": r"not well-formed",
}
# The XML formats a definitions upload can be; odm is the one that makes a schedule.
XML_FORMATS = ("cadsr", "odm")


def test_the_definition_tables_cover_the_whole_corpus_folders():
    assert set(REDCAP) == set(files("redcap"))
    assert set(XML) == set(files("xml"))


def _definition_cases(xml_formats=XML_FORMATS):
    for name in sorted(REDCAP):
        yield pytest.param("redcap", "redcap", name, id=f"redcap-{name}")
    for name in sorted(XML):
        for fmt in xml_formats:
            yield pytest.param("xml", fmt, name, id=f"{fmt}-{name}")


def _expected(folder: str, name: str) -> str:
    return REDCAP[name] if folder == "redcap" else XML[name]


def _assert_preview_refuses(response, folder: str, name: str) -> None:
    assert response.status_code in (200, 422), response.status_code
    text = text_of(response)
    assert_says(text, _expected(folder, name), f"preview of {name}")
    assert "passwd" not in text and "root:x:0:0" not in text, "a local file leaked into the page"
    token = response.context.get("token") if response.context else None
    if name not in WARNING_ONLY:
        assert token is None, f"{name}: the preview offers to confirm a file with errors"


@pytest.mark.parametrize(("folder", "fmt", "name"), list(_definition_cases()))
def test_staff_uploading_a_bad_definition_file_sees_the_problem(client, make_user, folder, fmt, name):
    client.force_login(make_user("boss", is_staff=True))
    before = counts()
    response = client.post(
        reverse("definitions:import_new"),
        {"format": fmt, "target": "registry", "file": upload(folder, name)},
    )
    _assert_preview_refuses(response, folder, name)
    assert_unchanged(before, name)


# caDSR files hold no schedule, so a study's own upload page takes REDCap and ODM only.
@pytest.mark.parametrize(("folder", "fmt", "name"), list(_definition_cases(("odm",))))
def test_a_study_administrator_uploading_bad_definitions_sees_the_problem(
    client, personas, folder, fmt, name
):
    client.force_login(personas["admin"])
    before = counts()
    response = client.post(
        reverse("definitions:import_for_study", args=["trial"]),
        {"format": fmt, "file": upload(folder, name)},
    )
    _assert_preview_refuses(response, folder, name)
    assert_unchanged(before, name)


def _command_cases():
    for name in sorted(set(REDCAP) - WARNING_ONLY):
        yield pytest.param("import_redcap_dictionary", "redcap", name, id=f"import_redcap_dictionary-{name}")
    for name in sorted(XML):
        yield pytest.param("import_cadsr", "xml", name, id=f"import_cadsr-{name}")
        yield pytest.param("import_odm", "xml", name, id=f"import_odm-{name}")


@pytest.mark.parametrize(("command", "folder", "name"), list(_command_cases()))
def test_the_definition_commands_refuse_a_bad_file(db, command, folder, name):
    before = counts()
    args = [str(corpus_path(folder, name))]
    options = {} if command == "import_cadsr" else {"study": "badinput"}
    with pytest.raises(CommandError) as refused:
        call_command(command, *args, **options, stdout=io.StringIO(), stderr=io.StringIO())
    assert_says(str(refused.value), r"error|nothing was loaded|fix", f"{command} {name}")
    assert_unchanged(before, name)


@pytest.mark.parametrize("name", sorted(WARNING_ONLY))
def test_a_dictionary_with_unreadable_branching_is_loaded_with_a_warning(db, name):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_redcap_dictionary",
        str(corpus_path("redcap", name)),
        study="badinput",
        check=True,
        stdout=out,
        stderr=err,
    )
    assert_says(out.getvalue(), REDCAP[name].replace("&gt;", ">"), name)


def test_a_definitions_upload_over_the_size_limit_is_refused(client, make_user):
    from capture.definitions.views import MAX_UPLOAD

    client.force_login(make_user("boss", is_staff=True))
    before = counts()
    big = SimpleUploadedFile("big.csv", make_corpus.REDCAP_HEADER.encode() + b"x" * MAX_UPLOAD)
    response = client.post(
        reverse("definitions:import_new"), {"format": "redcap", "target": "registry", "file": big}
    )
    assert response.status_code == 200
    assert_says(text_of(response), r"larger than 5 MB", "oversized dictionary")
    assert_unchanged(before, "oversized dictionary")


# ------------------------------------------------------------------------------ imaging

DICOM = {
    "truncated.dcm": r"missing StudyInstanceUID|unreadable|not a DICOM",
    "not_dicom.dcm": r"not a DICOM file",
    "zero_bytes.dcm": r"not a DICOM file|unreadable",
    "missing_uids.dcm": r"missing StudyInstanceUID, SeriesInstanceUID",
    "unknown_vr.dcm": r"Unknown Value Representation",
    "bad_value_length.dcm": r"BytesLengthException",
    "preamble_only.dcm": r"not a DICOM file|unreadable",
    "path_traversal.zip": r"outside the zip's own folder \(\.\./\.\./x\.dcm\)",
    "absolute_path.zip": r"outside the zip's own folder \(/tmp/capture-absolute\.dcm\)",
    "zip_bomb.zip": r"not a DICOM file",
    "lying_sizes.zip": r"damaged",
    "encrypted.zip": r"password",
    "corrupt_member.zip": r"damaged",
    "truncated.zip": r"not a readable zip",
    "png_named.zip": r"not a readable zip",
    "empty.zip": r"No files found",
    "only_junk.zip": r"not a DICOM file",
    "wrong_type.tar": r"Upload a \.zip file",
}
# The run itself is audited (imaging.ingest, with its zero counts); nothing else may be written.
INGEST_AUDIT = ("imaging.ingest",)


def test_the_dicom_table_covers_the_whole_corpus_folder():
    assert set(DICOM) == set(files("dicom"))


def _zipped(name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, corpus_path("dicom", name).read_bytes())
    return out.getvalue()


def _ingest_cases():
    for name in sorted(DICOM):
        yield pytest.param(name, False, id=name)
        if name.endswith(".dcm"):
            yield pytest.param(name, True, id=f"{name}-in-a-zip")


@pytest.mark.parametrize(("name", "wrap"), list(_ingest_cases()))
def test_a_bad_dicom_upload_ends_in_a_job_that_names_the_problem(
    client, personas, subjects, django_capture_on_commit_callbacks, name, wrap
):
    client.force_login(personas["data_manager"])
    before = counts(INGEST_AUDIT)
    archive = SimpleUploadedFile(f"{name}.zip", _zipped(name)) if wrap else upload("dicom", name)
    with django_capture_on_commit_callbacks(execute=True):  # the ingest job runs on commit
        response = client.post(reverse("imaging:ingest", args=["trial"]), {"archive": archive})
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        expected = (
            DICOM[name]
            if wrap or not name.endswith(".dcm")
            else r"Upload a \.zip file|The submitted file is empty"
        )
        assert_says(text_of(response), expected, f"upload of {name}")
    else:
        job = finished_job(name)
        page = client.get(response["Location"])
        assert page.status_code == 200
        if job.status == Job.SUCCEEDED:
            assert job.result["studies_new"] == 0, job.result
            assert job.result["unreadable"], f"{name}: nothing was reported unreadable"
            reasons = " ".join(f"{u['file']}: {u['reason']}" for u in job.result["unreadable"])
            assert_says(reasons, DICOM[name], f"ingest of {name}")
        else:
            assert_says(job.error, DICOM[name], f"ingest of {name}")
        assert_says(text_of(page), DICOM[name], f"job page of {name}")
    assert_unchanged(before, name, INGEST_AUDIT)


@pytest.mark.parametrize("name", files("dicom", ".dcm"))
def test_ingest_dicom_lists_a_bad_file_as_unreadable(db, study, tmp_path, name):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / name).write_bytes(corpus_path("dicom", name).read_bytes())
    before = counts(INGEST_AUDIT)
    err = io.StringIO()
    call_command("ingest_dicom", str(folder), study="trial", processes=1, stdout=io.StringIO(), stderr=err)
    assert_says(err.getvalue(), rf"unreadable: {re.escape(name)}: .*({DICOM[name]})", f"ingest_dicom {name}")
    assert_unchanged(before, name, INGEST_AUDIT)


def test_a_zip_that_unpacks_past_the_limit_is_refused_unread(
    client, personas, subjects, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(ingest, "MAX_UNPACKED_BYTES", 1024 * 1024)
    client.force_login(personas["data_manager"])
    before = counts(INGEST_AUDIT)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("imaging:ingest", args=["trial"]), {"archive": upload("dicom", "zip_bomb.zip")}
        )
    assert response.status_code == 302
    job = finished_job("zip bomb")
    assert job.status == Job.FAILED
    assert_says(job.error, r"unpacks to more than", "zip bomb")
    assert_unchanged(before, "zip bomb", INGEST_AUDIT)


# ------------------------------------------------------------------------------ REST API

# corpus file -> (status of PUT record, of POST subjects)
REST = {
    "malformed.json": (400, 400),
    "not_an_object.json": (400, 400),
    "list_of_numbers.json": (400, 400),
    "wrong_types.json": (400, 400),
    "nan.json": (400, 400),
    "huge_integer.json": (400, 400),
    "deep_nesting.json": (400, 400),
    "huge_string.json": (400, 400),
    "many_keys.json": (400, 400),
    "invalid_utf8.json": (400, 400),
}


def test_the_json_table_covers_the_whole_corpus_folder():
    assert set(REST) == set(files("json"))


@pytest.fixture
def api_client(client, personas):
    plain = tokens.create_api_token(user=personas["admin"], name="badinput")[1]
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {plain}"
    return client


@pytest.mark.parametrize("name", sorted(REST))
def test_a_bad_json_body_to_the_rest_api_is_a_400(api_client, subjects, name):
    body = corpus_path("json", name).read_bytes()
    record = reverse("api:record-detail", args=["trial", "A-0001", "baseline", "demographics", 1])
    subjects_url = reverse("api:subject-list", args=["trial"])
    before = counts()
    put = api_client.put(record, body, content_type="application/json")
    post = api_client.post(subjects_url, body, content_type="application/json")
    assert (put.status_code, post.status_code) == REST[name], (put.content[:500], post.content[:500])
    for response in (put, post):
        assert response.json().get("detail") or response.json(), "a 400 must say what is wrong"
    assert_unchanged(before, name)


# ------------------------------------------------------------------------------ REDCap API


@pytest.fixture
def redcap_token(personas, study):
    return tokens.create_redcap_token(user=personas["admin"], study=study)[1]


def _redcap(client, token: str, **params):
    return client.post(reverse("api:redcap"), {"token": token, **params})


@pytest.mark.parametrize("name", sorted(REST))
def test_a_bad_json_import_to_the_redcap_endpoint_is_a_400(client, redcap_token, subjects, name):
    data = corpus_path("json", name).read_bytes().decode("utf-8", "replace")
    before = counts()
    response = _redcap(
        client, redcap_token, content="record", action="import", format="json", returnFormat="json", data=data
    )
    assert response.status_code == 400, response.content[:500]
    assert response.json()["error"], "the error must say what is wrong"
    assert_unchanged(before, name)


REDCAP_REQUESTS = {
    "csv-with-a-huge-field": (
        {
            "content": "record",
            "action": "import",
            "format": "csv",
            "data": "record_id,age\nA-0001," + "9" * 200_000,
        },
        400,
        r"not valid CSV|field larger",
    ),
    "csv-with-nul-bytes": (
        {
            "content": "record",
            "action": "import",
            "format": "csv",
            "data": "record_id,redcap_event_name,age\nA-0001,baseline_arm_1,5\x004\n",
        },
        400,
        r"age",
    ),
    "repeat-instance-not-a-number": (
        {
            "content": "record",
            "action": "import",
            "format": "json",
            "data": json.dumps(
                [
                    {
                        "record_id": "A-0001",
                        "redcap_event_name": "week_8_arm_1",
                        "redcap_repeat_instrument": "lesions",
                        "redcap_repeat_instance": "two",
                        "visit_date": "2025-04-01",
                    }
                ]
            ),
        },
        400,
        r"redcap_repeat_instance must be a number from 1 to 2147483647",
    ),
    "repeat-instance-out-of-range": (
        {
            "content": "record",
            "action": "import",
            "format": "json",
            "data": json.dumps(
                [
                    {
                        "record_id": "A-0001",
                        "redcap_event_name": "week_8_arm_1",
                        "redcap_repeat_instrument": "lesions",
                        "redcap_repeat_instance": "99999999999999999999",
                        "visit_date": "2025-04-01",
                    }
                ]
            ),
        },
        400,
        r"redcap_repeat_instance must be a number from 1 to 2147483647",
    ),
    "repeat-instance-zero": (
        {
            "content": "record",
            "action": "import",
            "format": "json",
            "data": json.dumps(
                [
                    {
                        "record_id": "A-0001",
                        "redcap_event_name": "week_8_arm_1",
                        "redcap_repeat_instrument": "lesions",
                        "redcap_repeat_instance": "0",
                        "visit_date": "2025-04-01",
                    }
                ]
            ),
        },
        400,
        r"redcap_repeat_instance must be a number from 1 to 2147483647",
    ),
    "field-value-wrong-type": (
        {
            "content": "record",
            "action": "import",
            "format": "json",
            "data": json.dumps(
                [{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": {"a": [1]}}]
            ),
        },
        400,
        r"age",
    ),
    "arm-filter-not-a-number": ({"content": "arm", "format": "json", "arms[0]": "\u00b2"}, 200, r"\[|arm"),
    "delete-arm-not-a-number": (
        {"content": "record", "action": "delete", "records[0]": "A-0001", "arm": "\u00b2"},
        200,
        r"0",
    ),
    "filter-logic-nested-too-deeply": (
        {"content": "record", "format": "json", "filterLogic": "not " * 3000 + "[age] > 1"},
        400,
        r"filterLogic",
    ),
    "delete-instance-out-of-range": (
        {"content": "record", "action": "delete", "records[0]": "A-0001", "repeat_instance": "9" * 30},
        200,
        r"0",
    ),
    "delete-arm-out-of-range": (
        {"content": "record", "action": "delete", "records[0]": "A-0001", "arm": "9" * 30},
        200,
        r"0",
    ),
    "unknown-content": ({"content": "everything", "format": "json"}, 400, r"content"),
    "bad-format-choice": ({"content": "metadata", "format": "yaml"}, 400, r"format"),
    "bad-date-range": (
        {"content": "record", "format": "json", "dateRangeBegin": "yesterday"},
        400,
        r"dateRangeBegin",
    ),
}


@pytest.mark.parametrize("case", sorted(REDCAP_REQUESTS))
def test_a_bad_redcap_request_is_answered_with_a_reason(client, redcap_token, subjects, case):
    params, status, pattern = REDCAP_REQUESTS[case]
    before = counts()
    response = _redcap(client, redcap_token, returnFormat="json", **params)
    assert response.status_code == status, response.content[:500]
    assert_says(response.content.decode("utf-8", "replace"), pattern, case)
    assert_unchanged(before, case)


def test_a_redcap_request_with_a_garbled_content_length_is_a_400(client, redcap_token):
    response = client.generic(
        "POST",
        reverse("api:redcap"),
        f"token={redcap_token}&content=version".encode(),
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH="twelve",
    )
    assert response.status_code == 400, response.content[:300]


def test_a_redcap_request_claiming_more_than_the_limit_is_a_413(client, redcap_token):
    from capture.api.redcap.views import MAX_BODY_BYTES

    response = client.generic(
        "POST",
        reverse("api:redcap"),
        f"token={redcap_token}&content=version".encode(),
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(MAX_BODY_BYTES + 1),
    )
    assert response.status_code == 413


def test_a_zip_larger_than_an_ingest_may_unpack_is_refused_before_it_is_kept(
    client, personas, subjects, settings, monkeypatch
):
    monkeypatch.setattr(ingest, "MAX_UNPACKED_BYTES", 10_000)
    client.force_login(personas["data_manager"])
    before = counts()
    response = client.post(
        reverse("imaging:ingest", args=["trial"]), {"archive": upload("dicom", "zip_bomb.zip")}
    )
    assert response.status_code == 200
    assert_says(text_of(response), r"The zip is larger than .* the most an ingest unpacks", "oversized zip")
    assert not Job.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "imaging-uploads").exists()
    assert_unchanged(before, "oversized zip")
