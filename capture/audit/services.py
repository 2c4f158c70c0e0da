"""Writing and verifying the audit trail.

`record_event` is the only way an audit row is written. It must run inside the
transaction of the change it records (services call it under
`transaction.atomic`), so the change and its audit row commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from .models import GENESIS_HASH, AuditChain, AuditEvent

GLOBAL_CHAIN = "global"


def chain_key(study) -> str:
    return f"study:{study.pk}" if study is not None else GLOBAL_CHAIN


def _plain(value):
    # Normalise dates, decimals, UUIDs to JSON text now, so the value hashed
    # is exactly the value read back from the database later.
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record_event(
    *,
    actor,
    action: str,
    object_type: str,
    object_id,
    object_label: str = "",
    study=None,
    before=None,
    after=None,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the study's chain (or the global chain)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction of the change it records.")
    key = chain_key(study)
    AuditChain.objects.get_or_create(key=key)
    head = AuditChain.objects.select_for_update().get(key=key)
    actor_obj = actor if actor is not None and getattr(actor, "pk", None) else None
    # Microsecond precision is all the databases keep; truncate now so the hash survives the round trip.
    now = timezone.now().astimezone(dt.UTC)
    event = AuditEvent(
        chain=key,
        seq=head.last_seq + 1,
        study=study,
        actor=actor_obj,
        actor_label=actor_obj.get_username() if actor_obj else "system",
        timestamp=now,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_label=str(object_label)[:255],
        before=_plain(before),
        after=_plain(after),
        reason=reason,
        prev_hash=head.last_hash,
    )
    event.hash = event.compute_hash()
    event.save()
    head.last_seq = event.seq
    head.last_hash = event.hash
    head.save(update_fields=["last_seq", "last_hash"])
    return event


@dataclass(frozen=True)
class Problem:
    chain: str
    seq: int | None
    event_id: int | None
    kind: str  # edited | missing | inserted-or-reordered | tail-deleted | duplicate
    detail: str

    def __str__(self) -> str:
        where = f"{self.chain} event #{self.seq}" if self.seq is not None else self.chain
        ident = f" (row id {self.event_id})" if self.event_id is not None else ""
        return f"{where}{ident}: {self.kind} — {self.detail}"


def verify_chain(key: str) -> list[Problem]:
    problems: list[Problem] = []
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for event in AuditEvent.objects.filter(chain=key).order_by("seq", "id").iterator(chunk_size=2000):
        if event.seq < expected_seq:
            problems.append(
                Problem(key, event.seq, event.pk, "duplicate", "a second event carries this number")
            )
        elif event.seq > expected_seq:
            problems.append(
                Problem(
                    key,
                    event.seq,
                    event.pk,
                    "missing",
                    f"events #{expected_seq}–#{event.seq - 1} are gone (deleted)",
                )
            )
        if event.compute_hash() != event.hash:
            problems.append(
                Problem(key, event.seq, event.pk, "edited", "its content no longer matches its hash")
            )
        if event.prev_hash != expected_prev:
            problems.append(
                Problem(
                    key,
                    event.seq,
                    event.pk,
                    "inserted-or-reordered",
                    "its previous-event hash does not match the event before it",
                )
            )
        expected_prev = event.hash
        expected_seq = max(expected_seq, event.seq) + 1
    head = AuditChain.objects.filter(key=key).first()
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq != last_seq or head.last_hash != expected_prev):
        problems.append(
            Problem(
                key,
                head.last_seq,
                None,
                "tail-deleted",
                f"the chain head says {head.last_seq} events, the table ends at #{last_seq}",
            )
        )
    return problems


def verify_all() -> tuple[int, list[Problem]]:
    """Verify every chain; return (events checked, problems)."""
    keys = set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    keys |= set(AuditChain.objects.values_list("key", flat=True))
    problems: list[Problem] = []
    for key in sorted(keys):
        problems.extend(verify_chain(key))
    return AuditEvent.objects.count(), problems
