"""Tokens: shown once, stored hashed, revocable; REDCap tokens are 32 uppercase hex per user × study."""

from __future__ import annotations

import re

import pytest
from django.http import Http404

from capture.accounts.system import SYSTEM
from capture.api import tokens
from capture.api.models import ApiToken, RedcapToken
from capture.audit.models import AuditEvent


def test_an_api_token_is_stored_only_as_its_hash(personas):
    token, plain = tokens.create_api_token(user=personas["pi"], name="nightly")
    assert plain.startswith("cap_") and len(plain) > 40
    row = ApiToken.objects.get(pk=token.pk)
    assert plain not in (row.key_hash, row.prefix) and row.key_hash == tokens.hash_token(plain)
    assert tokens.user_for_api_token(plain) == personas["pi"]
    assert AuditEvent.objects.filter(action="api_token.create").exists()


def test_a_redcap_token_is_32_uppercase_hex_and_replaces_the_previous(personas, study):
    _, first = tokens.create_redcap_token(user=personas["coordinator_a"], study=study)
    _, second = tokens.create_redcap_token(user=personas["coordinator_a"], study=study)
    assert re.fullmatch(r"[0-9A-F]{32}", second)
    assert tokens.resolve_redcap_token(first) is None
    assert tokens.resolve_redcap_token(second) == (personas["coordinator_a"], study)
    assert RedcapToken.objects.filter(user=personas["coordinator_a"], revoked_at__isnull=True).count() == 1
    assert not RedcapToken.objects.filter(key_hash=second).exists()


def test_a_redcap_token_dies_with_the_users_role(personas, study):
    from capture.studies.services import revoke_role

    _, plain = tokens.create_redcap_token(user=personas["monitor"], study=study)
    revoke_role(actor=SYSTEM, study=study, user=personas["monitor"])
    assert tokens.resolve_redcap_token(plain) is None


def test_the_token_page_shows_a_new_token_once(client, personas, study):
    client.force_login(personas["coordinator_a"])
    page = client.get("/api/tokens/")
    assert page.status_code == 200 and "Trial" in page.content.decode()
    made = client.post("/api/tokens/new/", {"name": "my script"})
    plain = re.search(r'id="new-token">([^<]+)<', made.content.decode()).group(1)
    assert tokens.user_for_api_token(plain) == personas["coordinator_a"]
    assert plain not in client.get("/api/tokens/").content.decode()
    redcap = client.post("/api/tokens/redcap/trial/new/")
    assert re.search(r'id="new-token">[0-9A-F]{32}<', redcap.content.decode())


def test_a_user_revokes_only_their_own_tokens(client, personas):
    token, plain = tokens.create_api_token(user=personas["pi"], name="x")
    client.force_login(personas["monitor"])
    assert client.post(f"/api/tokens/{token.pk}/revoke/").status_code == 404
    client.force_login(personas["pi"])
    assert client.post(f"/api/tokens/{token.pk}/revoke/").status_code == 302
    assert tokens.user_for_api_token(plain) is None


def test_nobody_gets_a_redcap_token_for_a_study_they_cannot_see(client, personas, study):
    client.force_login(personas["outsider"])
    assert client.post("/api/tokens/redcap/trial/new/").status_code == 404
    assert not RedcapToken.objects.filter(user=personas["outsider"], study=study).exists()


def test_the_token_page_needs_a_login(client):
    assert client.get("/api/tokens/").status_code == 302


def test_a_page_showing_a_new_token_is_never_cached(client, personas, study):
    client.force_login(personas["coordinator_a"])
    for response in (
        client.post("/api/tokens/new/", {"name": "nightly"}),
        client.post("/api/tokens/redcap/trial/new/"),
        client.get("/api/tokens/"),
    ):
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"], response.request["PATH_INFO"]
        assert "private" in response["Cache-Control"]


def test_revoking_either_kind_of_token_is_audited_once_in_its_chain(personas, study):
    pi = personas["pi"]
    api, api_plain = tokens.create_api_token(user=pi, name="nightly")
    redcap, redcap_plain = tokens.create_redcap_token(user=pi, study=study)
    for _ in range(2):  # a second revoke changes nothing and audits nothing
        tokens.revoke_api_token(user=pi, token_id=api.pk)
        tokens.revoke_redcap_token(user=pi, token_id=redcap.pk)
    assert tokens.user_for_api_token(api_plain) is None and tokens.resolve_redcap_token(redcap_plain) is None
    events = AuditEvent.objects.filter(object_type__in=["api_token", "redcap_token"]).order_by("id")
    assert [(e.action, e.study_id, e.object_id, e.object_label, e.actor_id) for e in events] == [
        ("api_token.create", None, str(api.pk), "pi: nightly", pi.pk),
        ("redcap_token.create", study.pk, str(redcap.pk), "pi", pi.pk),
        ("api_token.revoke", None, str(api.pk), "pi: nightly", pi.pk),
        ("redcap_token.revoke", study.pk, str(redcap.pk), "pi", pi.pk),
    ]


def test_revoking_someone_elses_token_is_not_found(personas, study):
    redcap, _ = tokens.create_redcap_token(user=personas["pi"], study=study)
    with pytest.raises(Http404):
        tokens.revoke_redcap_token(user=personas["monitor"], token_id=redcap.pk)
    assert RedcapToken.objects.get(pk=redcap.pk).revoked_at is None
