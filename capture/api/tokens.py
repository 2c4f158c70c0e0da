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


@transaction.atomic
def create_api_token(*, user, name: str) -> tuple[ApiToken, str]:
    """Make a personal REST API token. Returns the row and the plain token (show it once)."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name that says what it is for (e.g. 'weekly export').")
    plain = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=plain[:10], key_hash=hash_token(plain))
    record_event(
        actor=user,
        action="api_token.create",
        object_type="api_token",
        object_id=token.pk,
        object_label=f"{user.get_username()}: {token.name}",
    )
    return token, plain


@transaction.atomic
def revoke_api_token(*, user, token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        from django.http import Http404

        raise Http404("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_event(
            actor=user,
            action="api_token.revoke",
            object_type="api_token",
            object_id=token.pk,
            object_label=f"{user.get_username()}: {token.name}",
        )
    return token


def user_for_api_token(plain: str):
    """The active user a REST API token belongs to, or None."""
    if not plain.startswith(API_TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(plain), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
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
    record_event(
        actor=user,
        study=study,
        action="redcap_token.create",
        object_type="redcap_token",
        object_id=token.pk,
        object_label=user.get_username(),
    )
    return token, plain


@transaction.atomic
def revoke_redcap_token(*, user, token_id: int) -> RedcapToken:
    token = RedcapToken.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        from django.http import Http404

        raise Http404("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_event(
            actor=user,
            study=token.study,
            action="redcap_token.revoke",
            object_type="redcap_token",
            object_id=token.pk,
            object_label=user.get_username(),
        )
    return token


def resolve_redcap_token(plain: str) -> tuple[object, Study] | None:
    """(user, study) for a live REDCap token whose user still may see the study, or None."""
    if not REDCAP_TOKEN_RE.fullmatch(plain or ""):
        return None
    token = (
        RedcapToken.objects.select_related("user", "study")
        .filter(key_hash=hash_token(plain), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active or not access.can(token.user, access.VIEW, token.study):
        return None
    _touch(token)
    return token.user, token.study
