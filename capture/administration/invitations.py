"""Inviting someone by e-mail: a user with no password yet, and a one-time link to set one.

The link is Django's password-reset token (PasswordResetTokenGenerator): it is bound to the
user's password hash and last log-in, so it stops working once used, and expires after
PASSWORD_RESET_TIMEOUT. The mail goes through Django's e-mail backend after the commit.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from capture.audit.services import record_event
from capture.studies import services


def set_password_path(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse(
        "administration:set_password",
        kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)},
    )


@transaction.atomic
def invite_member(*, actor, study, email: str, role: str, sites, absolute, **api_rights):
    """Make a user for `email` (or take the one who has it), give them the role, and mail them
    a link to set their password. `absolute` turns a path into a full URL (request.build_absolute_uri)."""
    users = get_user_model().objects
    found = users.filter(email__iexact=email).first()
    invited = found is None
    # No password for a new user: unusable until they set it.
    user = found if found is not None else users.create_user(username=email.lower(), email=email)
    membership = services.add_member(
        actor=actor, study=study, user=user, role=role, sites=sites, **api_rights
    )
    if invited:
        record_event(
            actor=actor,
            study=study,
            action="membership.invite",
            object_type="membership",
            object_id=membership.pk,
            object_label=user.get_username(),
            after={"email": email},
        )
        link = absolute(set_password_path(user))
        transaction.on_commit(
            lambda: send_mail(
                f"You are invited to {study.name} on Capture",
                f"{actor.get_username()} added you to {study.name}.\n\n"
                f"Set your password here (the link works once):\n{link}\n\nYour user name is {user.get_username()}.",
                None,
                [email],
            )
        )
    return membership, invited
