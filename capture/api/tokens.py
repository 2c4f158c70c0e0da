"""Making, finding and revoking API tokens. Views and the token page call these.

A token is shown once, by the function that makes it; only its SHA-256 is kept.
Making and revoking a token is audited (in the study's chain for a REDCap token).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from capture.audit.services import record_event
from capture.studies import access
from capture.studies.models import Study

from .models import ApiToken, RedcapToken

API_TOKEN_PREFIX = "cap_"  # noqa: S105 - a public marker that tells Capture tokens apart, not a secret
REDCAP_TOKEN_RE = re.compile(r"[0-9A-F]{32}")
# Don't write last_used_at on every request: once a minute is enough to tell a live token.
_TOUCH_EVERY = 60


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _touch(token) -> None:
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > _TOUCH_EVERY:
        type(token).objects.filter(pk=token.pk).update(last_used_at=now)


def _live(model, plain: str, *related: str):
    """The unrevoked token of `model` (ApiToken or RedcapToken) for `plain`, of an active user, or None."""
    token = (
        model.objects.select_related("user", *related)
        .filter(key_hash=hash_token(plain), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    return token


def _audit(user, token, verb: str) -> None:
    """A token's create/revoke event: a REDCap token in its study's chain, named by its user."""
    if isinstance(token, RedcapToken):
        kind, study, label = "redcap_token", token.study, user.get_username()
    else:
        kind, study, label = "api_token", None, f"{user.get_username()}: {token.name}"
    record_event(
        actor=user,
        study=study,
        action=f"{kind}.{verb}",
        object_type=kind,
        object_id=token.pk,
        object_label=label,
    )


@transaction.atomic
def _revoke(model, *, user, token_id: int):
    """Revoke the user's own token (once: a second call changes nothing and audits nothing)."""
    token = model.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        raise Http404("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _audit(user, token, "revoke")
    return token


@transaction.atomic
def create_api_token(*, user, name: str) -> tuple[ApiToken, str]:
    """Make a personal REST API token. Returns the row and the plain token (show it once)."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name that says what it is for (e.g. 'weekly export').")
    plain = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=plain[:10], key_hash=hash_token(plain))
    _audit(user, token, "create")
    return token, plain


def revoke_api_token(*, user, token_id: int) -> ApiToken:
    return _revoke(ApiToken, user=user, token_id=token_id)


def user_for_api_token(plain: str):
    """The active user a REST API token belongs to, or None."""
    if not plain.startswith(API_TOKEN_PREFIX):
        return None
    token = _live(ApiToken, plain)
    if token is None:
        return None
    _touch(token)
    return token.user


@transaction.atomic
def create_redcap_token(*, user, study: Study) -> tuple[RedcapToken, str]:
    """Make the user's REDCap API token for `study`, revoking any earlier one.

    Anyone who may see the study may have one; what it can do is what their role allows."""
    if not access.can(user, access.VIEW, study):
        raise PermissionDenied(f"You have no role in {study.name}; ask its administrator for one first.")
    now = timezone.now()
    for old in RedcapToken.objects.select_for_update().filter(
        user=user, study=study, revoked_at__isnull=True
    ):
        old.revoked_at = now
        old.save(update_fields=["revoked_at"])
    plain = secrets.token_hex(16).upper()
    token = RedcapToken.objects.create(user=user, study=study, prefix=plain[:6], key_hash=hash_token(plain))
    _audit(user, token, "create")
    return token, plain


def revoke_redcap_token(*, user, token_id: int) -> RedcapToken:
    return _revoke(RedcapToken, user=user, token_id=token_id)


def resolve_redcap_token(plain: str) -> tuple[object, Study] | None:
    """(user, study) for a live REDCap token whose user still may see the study, or None."""
    if not REDCAP_TOKEN_RE.fullmatch(plain or ""):
        return None
    token = _live(RedcapToken, plain, "study")
    if token is None or not access.can(token.user, access.VIEW, token.study):
        return None
    _touch(token)
    return token.user, token.study
