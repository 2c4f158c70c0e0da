"""A study's status (development / production / closed): the rules of changing it, and each write
surface asking the one guard (studies.services.require_writable). Expectations written by hand."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.definitions.converters import redcap
from capture.definitions.services import create_study_from_conversion, update_study_definitions
from capture.imports import services as imports
from capture.imports.mapping import Mapping
from capture.records.models import FormRecord
from capture.records.services import open_query, save_record, set_record_lock
from capture.studies import services
from capture.studies.models import Membership, Site, Study, Subject
from tests.interop.conftest import REDCAP, shared

CLOSED = re.escape("Trial is closed (read-only), so you cannot")
CLOSED_TEXT = "Trial is closed (read-only), so you cannot"
REDCAP_API = "/redcap/api/"


def _set(personas, study, status, reason="end of follow-up"):
    return services.set_study_status(actor=personas["admin"], study=study, status=status, reason=reason)


def _close(personas, study):
    study = _set(personas, study, Study.CLOSED)
    assert study.status == "closed"
    return study


def _last(study, action):
    return AuditEvent.objects.filter(study=study, action=action).order_by("-seq").first()


# ---------------------------------------------------------------------------- the rules of changing it


def test_a_new_study_is_in_development(study):
    assert Study.objects.get(pk=study.pk).status == "development"


def test_each_status_change_is_audited_with_who_and_the_reason(personas, study):
    _set(personas, study, Study.PRODUCTION, reason="")
    _set(personas, study, Study.CLOSED, reason="last patient out")
    closed = _last(study, "study.status")
    assert (closed.before, closed.after) == ({"status": "production"}, {"status": "closed"})
    assert (closed.actor_label, closed.reason) == ("admin", "last patient out")
    _set(personas, study, Study.PRODUCTION, reason="a late query")
    reopened = _last(study, "study.status")
    assert (reopened.before, reopened.after, reopened.reason) == (
        {"status": "closed"},
        {"status": "production"},
        "a late query",
    )


@pytest.mark.parametrize("first", ["development", "production"])
def test_closing_and_reopening_need_a_reason(personas, study, first):
    _set(personas, study, first, reason="")
    with pytest.raises(services.ValidationError, match="Closing a study needs a reason"):
        _set(personas, study, Study.CLOSED, reason="  ")
    _close(personas, study)
    with pytest.raises(services.ValidationError, match="Reopening a study needs a reason"):
        _set(personas, study, Study.PRODUCTION, reason="")
    assert Study.objects.get(pk=study.pk).status == "closed"


def test_a_study_with_subjects_never_goes_back_to_development(personas, study, subjects):
    _set(personas, study, Study.PRODUCTION)
    with pytest.raises(services.ValidationError, match="has enrolled subjects, so it cannot go"):
        _set(personas, study, Study.DEVELOPMENT)
    _close(personas, study)
    with pytest.raises(services.ValidationError, match="has enrolled subjects, so it cannot go"):
        _set(personas, study, Study.DEVELOPMENT, reason="reopen")


def test_only_a_study_manager_changes_the_status(personas, study):
    with pytest.raises(services.PermissionDenied):
        services.set_study_status(actor=personas["pi"], study=study, status="closed", reason="x")
    assert Study.objects.get(pk=study.pk).status == "development"


# ---------------------------------------------------------------------------- closed: read-only everywhere


def test_a_closed_study_refuses_saving_locking_and_queries(personas, study, subjects):
    record = save_record(
        actor=personas["admin"], subject=subjects["a"], event_name="baseline", form_name="demographics",
        values={"age": "50"},
    )  # fmt: skip
    _close(personas, study)
    subject = Subject.objects.select_related("study", "site").get(pk=subjects["a"].pk)
    with pytest.raises(services.StudyNotWritableError, match=f"{CLOSED} save data"):
        save_record(
            actor=personas["admin"], subject=subject, event_name="baseline", form_name="demographics",
            values={"age": "51"}, expected_version=1,
        )  # fmt: skip
    record = FormRecord.objects.select_related("subject__study", "subject__site", "event").get(pk=record.pk)
    with pytest.raises(services.StudyNotWritableError, match=f"{CLOSED} lock or unlock records"):
        set_record_lock(actor=personas["admin"], record=record, locked=True, reason="done")
    with pytest.raises(services.StudyNotWritableError, match=f"{CLOSED} raise queries"):
        open_query(actor=personas["monitor"], record=record, field="age", text="sure?")
    assert FormRecord.objects.get(pk=record.pk).data["age"] == 50


def test_the_entry_page_of_a_closed_study_says_it_is_read_only(client, personas, study, subjects):
    _close(personas, study)
    client.force_login(personas["coordinator_a"])
    url = reverse("records:entry", args=["trial", "A-0001", "baseline", "demographics", 1])
    response = client.post(url, {"age": "50", "__status": "0", "__version": ""})
    assert response.status_code == 200
    assert f"{CLOSED_TEXT} save data" in response.content.decode()
    assert not FormRecord.objects.filter(subject=subjects["a"]).exists()


def test_a_closed_study_refuses_enrolment_on_the_page_and_in_the_service(client, personas, study):
    study = _close(personas, study)  # the guard reads the status of the study its caller loaded
    site = Site.objects.get(study=study, code="A")
    with pytest.raises(services.StudyNotWritableError, match=f"{CLOSED} enrol subjects"):
        services.enroll_subject(
            actor=personas["admin"], study=study, site=site, enrollment_date=dt.date(2025, 3, 1)
        )
    client.force_login(personas["admin"])
    response = client.post(
        reverse("web:enroll", args=["trial"]),
        {"site": site.pk, "kind": "patient", "enrollment_date": "2025-03-01"},
    )
    assert f"{CLOSED_TEXT} enrol subjects" in response.content.decode()
    assert not Subject.objects.filter(study=study).exists()


def test_a_closed_study_refuses_site_member_and_settings_changes_but_reopens(
    client, personas, study, make_user
):
    study = _close(personas, study)  # the guard reads the status of the study its caller loaded
    admin = personas["admin"]
    refused = [
        lambda: services.open_site(actor=admin, study=study, code="C", name="Site C"),
        lambda: services.add_member(actor=admin, study=study, user=make_user("newcomer"), role="pi"),
        lambda: services.change_member(
            actor=admin, study=study, membership=Membership.objects.get(user=personas["pi"]), role="monitor"
        ),
        lambda: services.set_missing_codes(actor=admin, study=study, codes=[{"code": "X", "meaning": "x"}]),
        lambda: services.set_subject_id_policy(
            actor=admin, study=study, subject_ids="source", pattern="{seq}"
        ),
        lambda: services.grant_role(actor=admin, study=study, user=make_user("other"), role="pi"),
    ]
    for attempt in refused:
        with pytest.raises(services.StudyNotWritableError, match=CLOSED):
            attempt()
    assert not Site.objects.filter(study=study, code="C").exists()
    client.force_login(admin)
    response = client.post(
        reverse("administration:site_add", args=["trial"]), {"code": "C", "name": "Site C"}
    )
    assert f"{CLOSED_TEXT} change its sites, members or settings" in response.content.decode()
    study = _set(personas, study, Study.PRODUCTION, reason="reopened for a query")
    services.open_site(actor=admin, study=study, code="C", name="Site C")
    assert Site.objects.filter(study=study, code="C").exists()


def test_a_closed_study_refuses_an_import(personas, study, subjects, tmp_path):
    study = _close(personas, study)  # the guard reads the status of the study its caller loaded
    sheet = tmp_path / "ages.csv"
    sheet.write_text("Patient,Age\nA-0001,50\n")
    spec = {
        "subject_column": "Patient",
        "event": "baseline",
        "columns": [{"column": "Age", "form": "demographics", "item": "age"}],
    }
    with pytest.raises(services.StudyNotWritableError, match=f"{CLOSED} import data"):
        imports.run_import(
            actor=personas["admin"], study=study, path=sheet, mapping=Mapping.from_spec(spec), commit=True
        )
    assert not FormRecord.objects.filter(subject=subjects["a"]).exists()


def test_the_rest_api_of_a_closed_study_refuses_writes_and_still_reads(
    client, personas, study, records, api_tokens
):
    _close(personas, study)
    auth = {"HTTP_AUTHORIZATION": f"Token {api_tokens['admin']}"}
    url = "/api/v1/studies/trial/subjects/A-0001/records/baseline/demographics/1/"
    body = {"values": {"age": 56}, "status": 0, "version": records["a_demo"].version, "reason": "typo"}
    refused = client.put(url, body, content_type="application/json", **auth)
    assert refused.status_code == 400 and f"{CLOSED_TEXT} save data" in refused.content.decode()
    enrol = client.post(
        "/api/v1/studies/trial/subjects/", {"site": "A", "enrollment_date": "2025-03-01"},
        content_type="application/json", **auth,
    )  # fmt: skip
    assert enrol.status_code == 400 and f"{CLOSED_TEXT} enrol subjects" in enrol.content.decode()
    assert client.get(url, **auth).status_code == 200


def test_the_redcap_api_of_a_closed_study_refuses_record_imports_and_still_exports(
    client, personas, study, records, redcap_tokens
):
    _close(personas, study)
    token = redcap_tokens["admin"]
    rows = json.dumps([{"record_id": "A-0001", "redcap_event_name": "baseline_arm_1", "age": "57"}])
    refused = client.post(
        REDCAP_API, {"token": token, "content": "record", "action": "import", "format": "json", "data": rows}
    )
    assert refused.status_code == 400 and f"{CLOSED_TEXT} change data" in refused.json()["error"]
    exported = client.post(REDCAP_API, {"token": token, "content": "record", "format": "json"})
    assert exported.status_code == 200 and len(exported.json()) > 0


# ---------------------------------------------------------------------------- definitions by status


@pytest.mark.parametrize("content", ["metadata", "arm", "event", "formEventMapping"])
def test_redcap_definition_writes_in_production_answer_redcaps_wording(
    client, personas, study, redcap_tokens, content
):
    _set(personas, study, Study.PRODUCTION)
    what = {
        "metadata": "import metadata",
        "arm": "import arms",
        "event": "import events",
        "formEventMapping": "import the instrument-event mappings",
    }[content]
    response = client.post(
        REDCAP_API,
        {
            "token": redcap_tokens["admin"],
            "content": content,
            "action": "import",
            "format": "json",
            "data": "[]",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"You cannot {what} because the project is in production.")


def test_redcap_definition_writes_in_development_pass_the_status_guard(client, study, redcap_tokens):
    response = client.post(
        REDCAP_API,
        {
            "token": redcap_tokens["admin"],
            "content": "metadata",
            "action": "import",
            "format": "json",
            "data": "[]",
        },
    )
    assert "in production" not in response.json()["error"]


def test_redcap_project_info_says_whether_the_study_is_in_production(client, personas, study, redcap_tokens):
    def in_production():
        info = client.post(
            REDCAP_API, {"token": redcap_tokens["admin"], "content": "project", "format": "json"}
        )
        return info.json()["in_production"]

    assert in_production() == 0
    _set(personas, study, Study.PRODUCTION)
    assert in_production() == 1


def _simple_study(make_user, personas):
    path = shared(REDCAP / "redcapr_simple_dictionary.csv")
    boss = make_user("boss", is_staff=True)
    conversion = redcap.read_dictionary(path.read_bytes(), project="simple", source=path.name)
    study, _ = create_study_from_conversion(actor=boss, conversion=conversion, slug="simple", name="Simple")
    services.grant_role(actor=boss, study=study, user=personas["admin"], role="study_admin")
    changed = path.read_bytes().replace(b'"Age (years)"', b'"Age at consent (years)"')
    return study, redcap.read_dictionary(changed, project="simple", source="changed.csv")


def test_in_production_definitions_change_as_new_versions_and_a_closed_study_refuses(personas, make_user):
    study, changed = _simple_study(make_user, personas)
    study = services.set_study_status(actor=personas["admin"], study=study, status="closed", reason="done")
    with pytest.raises(
        services.StudyNotWritableError, match="Simple is closed .read-only., so you cannot change its"
    ):
        update_study_definitions(actor=personas["admin"], study=study, conversion=changed)
    study = services.set_study_status(
        actor=personas["admin"], study=study, status="production", reason="amend"
    )
    update_study_definitions(actor=personas["admin"], study=study, conversion=changed)
    assert Study.objects.get(pk=study.pk).schedule.ref == "simple@1.1"  # a new version, the old one kept


# ---------------------------------------------------------------------------- the settings page


def test_the_settings_page_changes_the_status_with_a_reason(client, personas, study):
    client.force_login(personas["admin"])
    url = reverse("administration:settings", args=["trial"])
    assert client.post(url, {"do": "status", "status": "production", "reason": ""}).status_code == 302
    response = client.post(url, {"do": "status", "status": "closed", "reason": ""})
    assert response.status_code == 200 and "Closing a study needs a reason" in response.content.decode()
    assert client.post(url, {"do": "status", "status": "closed", "reason": "archived"}).status_code == 302
    page = client.get(url).content.decode()
    assert "Trial is closed: it is read-only everywhere" in page
    event = _last(study, "study.status")
    assert (event.after, event.reason) == ({"status": "closed"}, "archived")


def test_the_settings_page_sets_the_subject_id_policy_until_subjects_exist(client, personas, study):
    client.force_login(personas["admin"])
    url = reverse("administration:settings", args=["trial"])
    bad = client.post(url, {"do": "ids", "subject_ids": "pattern", "subject_id_pattern": "{site}"})
    assert "needs {seq}" in bad.content.decode()
    ok = client.post(url, {"do": "ids", "subject_ids": "pattern", "subject_id_pattern": "TR-{site}{seq:03d}"})
    assert ok.status_code == 302
    event = _last(study, "study.subject_ids")
    assert event.before == {"subject_ids": "pattern", "subject_id_pattern": "{site}-{seq:04d}"}
    assert event.after == {"subject_ids": "pattern", "subject_id_pattern": "TR-{site}{seq:03d}"}
    subject = services.enroll_subject(
        actor=personas["admin"], study=Study.objects.get(pk=study.pk), site=study.sites.get(code="A"),
        enrollment_date=dt.date(2025, 3, 1),
    )  # fmt: skip
    assert subject.subject_id == "TR-A001"
    page = client.get(url).content.decode()
    assert "Subjects are enrolled, so the policy cannot change" in page and 'value="ids"' not in page
    refused = client.post(url, {"do": "ids", "subject_ids": "source", "subject_id_pattern": "{seq}"})
    assert "has enrolled subjects, so its subject id policy cannot change" in refused.content.decode()
    assert Study.objects.get(pk=study.pk).subject_ids == "pattern"
