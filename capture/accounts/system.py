"""Who acts when no person is at the keyboard: the explicit system actor, and `--as USER`.

Every service takes an `actor`. A person's work passes their user, and the service checks their
permissions. Work that no person started (a management command run without `--as`, the demo seed,
a scheduled job) passes a `SystemActor`: it holds every permission, and its audit events say which
command acted (`actor_label`, e.g. "system: manage.py import_odm"), with no user row behind them.
`None` is not an actor: a service that receives it raises instead of skipping its checks.

Commands offer `--as USER`: the command then acts as that user, with that user's permissions, and
its audit events name them. `add_actor_argument` and `actor_from_options` are the two halves.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


@dataclass(frozen=True)
class SystemActor:
    """The actor of unattended work. Looks like an active superuser to permission checks, but is
    not a user row: it cannot log in, and audit events keep only its label."""

    label: str = "system"

    pk = None
    is_authenticated = True
    is_active = True
    is_superuser = True
    is_staff = True

    def get_username(self) -> str:
        return self.label

    def __str__(self) -> str:
        return self.label


SYSTEM = SystemActor()


def is_system(actor) -> bool:
    return isinstance(actor, SystemActor)


def require_actor(actor):
    """The actor, or a clear error when a caller passed none (the old `actor=None` skipped checks)."""
    if actor is None:
        raise TypeError("An actor is required: pass the user who acts, or SystemActor for unattended work.")
    return actor


def user_or_none(actor):
    """The user row to store in a foreign key (`updated_by`, `decided_by`): None for the system."""
    return actor if actor is not None and getattr(actor, "pk", None) else None


def add_actor_argument(parser) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        default="",
        help="act as this user (their permissions apply, audit events name them); "
        "without it the command acts as the system",
    )


def actor_from_options(options: dict, command: str):
    """The user named by `--as`, or the system actor labelled with the command's name."""
    username = options.get("as_user") or ""
    if not username:
        return SystemActor(label=f"system: manage.py {command}")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user {username!r} (--as).")
    return user
