"""Creating a subject over REST (POST /api/v1/studies/<slug>/subjects/): a study that keeps its
source's ids takes the id given, a pattern study gives the next one; the role must enrol and the
site must be one of the user's."""

from __future__ import annotations

import pytest

from capture.audit.models import AuditEvent
from capture.studies.models import Study, Subject

URL = "/api/v1/studies/trial/subjects/"


def post(client, token, body):
    return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")


@pytest.fixture
def source_ids(study, subjects):
    Study.objects.filter(pk=study.pk).update(subject_ids=Study.SOURCE_IDS)
    return study


def test_a_source_id_study_enrols_the_given_id_at_the_users_site(client, api_tokens, source_ids):
    response = post(
        client,
        api_tokens["coordinator_a"],
        {"subject_id": "p-17", "site": "A", "enrollment_date": "2025-03-05"},
    )
    assert response.status_code == 201, response.content
    assert (response.json()["subject_id"], response.json()["site"]) == ("p-17", "A")
    subject = Subject.objects.get(study=source_ids, subject_id="p-17")
    assert AuditEvent.objects.filter(action="subject.enroll", object_id=str(subject.pk)).exists()


def test_a_source_id_study_needs_the_id(client, api_tokens, source_ids):
    response = post(client, api_tokens["coordinator_a"], {"site": "A", "enrollment_date": "2025-03-05"})
    assert response.status_code == 400
    assert "keeps its source's subject ids: give the new subject's subject_id" in response.json()["detail"]


def test_a_pattern_study_gives_the_id_and_refuses_one_given(client, api_tokens, subjects):
    response = post(
        client,
        api_tokens["coordinator_a"],
        {"subject_id": "p-17", "site": "A", "enrollment_date": "2025-03-05"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "This study gives subject ids by its pattern ({site}-{seq:04d}): leave subject_id out."
    )
    response = post(client, api_tokens["coordinator_a"], {"site": "A", "enrollment_date": "2025-03-05"})
    assert response.status_code == 201 and response.json()["subject_id"] == "A-0003"


def test_an_id_taken_elsewhere_is_refused_without_saying_where(client, api_tokens, source_ids):
    response = post(
        client,
        api_tokens["coordinator_a"],
        {"subject_id": "B-0001", "site": "A", "enrollment_date": "2025-03-05"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Subject 'B-0001' cannot be enrolled: the id is taken (perhaps at a site you do not see)."
    )


@pytest.mark.parametrize(
    ("persona", "site", "expected"),
    [
        ("coordinator_a", "B", 400),  # not one of their sites: "see GET sites/ for yours"
        ("coordinator_b", "A", 400),
        ("statistician", "A", 403),
        ("monitor", "A", 403),
        ("outsider", "A", 404),
        ("data_manager", "B", 201),
    ],
)
def test_a_role_that_may_not_enrol_or_a_site_not_the_users_is_refused(
    client, api_tokens, source_ids, persona, site, expected
):
    response = post(
        client, api_tokens[persona], {"subject_id": "new-1", "site": site, "enrollment_date": "2025-03-05"}
    )
    assert response.status_code == expected, response.content
    assert Subject.objects.filter(study=source_ids, subject_id="new-1").exists() == (expected == 201)
