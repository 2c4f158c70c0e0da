"""The explicit system actor and `--as USER`: who acts when no person is at the keyboard."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from capture.accounts.system import SYSTEM, SystemActor, actor_from_options, require_actor, user_or_none
from capture.studies import access


def test_none_is_not_an_actor():
    with pytest.raises(TypeError, match="actor is required"):
        require_actor(None)


def test_system_actor_has_no_user_row_to_store():
    assert user_or_none(SYSTEM) is None
    assert SYSTEM.get_username() == "system"


def test_system_actor_holds_every_study_permission(study):
    assert access.can(SYSTEM, "manage_study", study)
    assert access.can(SYSTEM, "enter_data", study)


@pytest.mark.django_db
def test_command_without_as_acts_as_the_system_labelled_with_the_command():
    actor = actor_from_options({"as_user": ""}, "import_odm")
    assert isinstance(actor, SystemActor)
    assert actor.get_username() == "system: manage.py import_odm"


@pytest.mark.django_db
def test_command_with_as_acts_as_that_user():
    user = get_user_model().objects.create_user("coord", password="x")
    assert actor_from_options({"as_user": "coord"}, "import_odm") == user


@pytest.mark.django_db
def test_command_with_as_refuses_an_unknown_or_inactive_user():
    get_user_model().objects.create_user("gone", password="x", is_active=False)
    for name in ("nobody", "gone"):
        with pytest.raises(CommandError, match=name):
            actor_from_options({"as_user": name}, "import_odm")
