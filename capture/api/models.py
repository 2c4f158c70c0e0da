"""API credentials: personal tokens for the REST API and REDCap-style tokens per user × study.

Only a SHA-256 of each token is stored. Tokens are random (128 bits or more), so a
fast hash is enough: nobody can guess a preimage, and a lookup is one indexed query.
The plain token is shown once, when it is made, and never again.
"""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A personal token for `/api/v1/`: acts as its user, with that user's roles in every study."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'nightly export script'.")
    # The first characters of the token, so a user can tell their tokens apart; not enough to use it.
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class RedcapToken(models.Model):
    """A REDCap API token: 32 uppercase hex characters naming one user in one study (a REDCap "project")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="redcap_tokens")
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="redcap_tokens")
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One live token per user and study, as in REDCap; making a new one revokes the old.
            models.UniqueConstraint(
                fields=["user", "study"],
                condition=models.Q(revoked_at__isnull=True),
                name="redcaptoken_one_active_per_user_study",
            )
        ]

    def __str__(self) -> str:
        return f"REDCap token {self.prefix}… for {self.study}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
