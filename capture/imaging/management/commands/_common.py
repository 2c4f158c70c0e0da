"""Helpers shared by the imaging commands."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from capture.studies.models import Study


def get_study(slug: str) -> Study:
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        known = ", ".join(Study.objects.values_list("slug", flat=True)) or "none yet"
        raise CommandError(f"No study {slug!r}; known studies: {known}.")
    return study


def refusal(exc: PermissionDenied | ValidationError) -> CommandError:
    """A service's refusal as the command's error."""
    if isinstance(exc, ValidationError):
        return CommandError(" ".join(exc.messages))
    return CommandError(str(exc))
