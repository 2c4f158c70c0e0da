"""The audit trail: append-only, one hash chain per study.

Each event stores the SHA-256 of its own content and of the previous event of
its chain, so editing, inserting, deleting or reordering events shows when the
chain is verified (`manage.py verify_audit`). Events are written only through
`capture.audit.services.record_event`, inside the transaction of the change
they describe.
"""

import hashlib
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event through the ORM."""


class AuditChain(models.Model):
    """The head of one chain: locked while an event is appended, so that
    concurrent writers get consecutive sequence numbers and a true previous hash."""

    key = models.CharField(max_length=100, unique=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"{self.key} @ {self.last_seq}"


class ChainJSONField(models.JSONField):
    """An event's before/after: JSON text the chain hashes, written only by canonical_json (in
    record_event and append_events), so SQLite's JSON_VALID check, run on every insert, could never
    refuse a row; verify_chain reads the text back and re-hashes it. Without the check (PostgreSQL's
    jsonb has none to drop)."""

    def db_check(self, connection):
        return None


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(models.Model):
    # Every index is paid for on each of the millions of inserts (an import writes one event per
    # record), so each one below answers a query that no other index answers. No index of its own
    # on `chain` (the unique (chain, seq) and the audit page's indexes all begin with it) nor on
    # `action` (it is always asked within a chain: audit_chain_action_time); `object_id` alone
    # finds an object's events, of whatever type (audit/migrations/0003).
    chain = models.CharField(max_length=100)
    seq = models.PositiveBigIntegerField()
    # No index on `study` or `actor` (audit/migrations/0004): every query goes by chain (a study's
    # chain is "study:<pk>"), and the user filter by actor_label; only deleting a study or a user
    # asks by these columns, and PROTECT refuses that once there are events. No database foreign
    # key either (0006): an event is self-contained (the actor's name is kept beside the id, and the
    # chain's hash covers both ids), so the server need not look up the study and the user again for
    # each of an import's 68,000 events (on PostgreSQL a second of the commit's checks).
    study = models.ForeignKey(
        "studies.Study",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # The actor's username as it was, so that the hash never depends on a row elsewhere.
    actor_label = models.CharField(max_length=150)
    timestamp = models.DateTimeField()
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255, db_index=True)
    object_label = models.CharField(max_length=255, blank=True)
    before = ChainJSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = ChainJSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_unique_chain_seq")]
        ordering = ["chain", "seq"]
        indexes = [
            # The audit log page (capture/administration/auditlog.py) reads one study's chain newest
            # first, by (timestamp, seq), and filters by user, action, date and subject: an index
            # for each, ending in the order, so a filtered page is one index range at a million events.
            models.Index(fields=["chain", "timestamp", "seq"], name="audit_chain_time_seq"),
            models.Index(fields=["chain", "actor_label", "timestamp", "seq"], name="audit_chain_actor_time"),
            models.Index(fields=["chain", "action", "timestamp", "seq"], name="audit_chain_action_time"),
            # A subject's events are found by label (its id, or "<id> / ..."): a prefix search, which
            # PostgreSQL answers from an index only with the pattern operator class.
            models.Index(
                fields=["chain", "object_label"],
                name="audit_chain_label",
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chain}#{self.seq} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only; this one is already saved.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")

    def content(self) -> dict:
        """Everything the hash covers. If you add a field to the model, add it here."""
        return {
            "chain": self.chain,
            "seq": self.seq,
            "study": self.study_id,
            "actor": self.actor_id,
            "actor_label": self.actor_label,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "object_label": self.object_label,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
