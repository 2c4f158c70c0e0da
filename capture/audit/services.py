"""Writing and verifying the audit trail.

`record_event` is the only way an audit row is written. It must run inside the
transaction of the change it records (services call it under
`transaction.atomic`), so the change and its audit row commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from types import SimpleNamespace
from typing import Any, NamedTuple

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from capture.accounts.system import require_actor, user_or_none
from capture.dbcopy import insert_rows

from .models import GENESIS_HASH, AuditChain, AuditEvent

GLOBAL_CHAIN = "global"


def chain_key(study) -> str:
    return f"study:{study.pk}" if study is not None else GLOBAL_CHAIN


def _json_float(text: str):
    # json.dumps writes a float from 1e16 up as '1e+16'; PostgreSQL's jsonb keeps it as a numeric
    # and gives back '10000000000000000', which reads as an int. Hash the int it will read back.
    return int(Decimal(text)) if "e+" in text.lower() else float(text)


def _plain(value):
    # Normalise dates, decimals, UUIDs and large floats to JSON now, so the value hashed
    # is exactly the value read back from the database later (SQLite or PostgreSQL).
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder), parse_float=_json_float)


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
    actor_obj = user_or_none(require_actor(actor))
    key = chain_key(study)
    seq, prev_hash = _advance_head(key)
    # Microsecond precision is all the databases keep; truncate now so the hash survives the round trip.
    now = timezone.now().astimezone(dt.UTC)
    event = AuditEvent(
        chain=key,
        seq=seq,
        study=study,
        actor=actor_obj,
        actor_label=actor.get_username(),
        timestamp=now,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_label=str(object_label)[:255],
        before=_plain(before),
        after=_plain(after),
        reason=reason,
        prev_hash=prev_hash,
    )
    event.hash = event.compute_hash()
    _insert_and_seal(event)
    return event


def _advance_head(key: str) -> tuple[int, str]:
    """Move the chain head one event on, in one statement: (the new event's number, the hash of
    the event before it). The UPDATE locks the head row for the rest of the transaction, so a
    concurrent writer waits at its own UPDATE and then reads the head this event leaves (on
    PostgreSQL, READ COMMITTED re-reads the row it waited for; SQLite allows one writer)."""
    table = connection.ops.quote_name(AuditChain._meta.db_table)
    sql = f"UPDATE {table} SET last_seq = last_seq + 1 WHERE {connection.ops.quote_name('key')} = %s RETURNING last_seq, last_hash"  # noqa: S608 - names from model metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
        if row is None:
            # The chain's first event. Another writer may be creating the head at the same moment;
            # get_or_create settles that on the unique key, and the UPDATE then locks it as above.
            AuditChain.objects.get_or_create(key=key)
            cursor.execute(sql, [key])
            row = cursor.fetchone()
    return int(row[0]), row[1]


_INSERT_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]


def _insert_and_seal(event: AuditEvent) -> None:
    """Insert the event and set the chain head's hash to its hash: one statement on PostgreSQL
    (a data-modifying WITH), two elsewhere."""
    if connection.vendor != "postgresql":
        event.save()
        AuditChain.objects.filter(key=event.chain).update(last_hash=event.hash)
        return
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column or f.attname) for f in _INSERT_FIELDS)
    values = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in _INSERT_FIELDS]
    sql = (
        f"WITH event AS (INSERT INTO {qn(AuditEvent._meta.db_table)} ({columns}) "  # noqa: S608 - names from model metadata
        f"VALUES ({', '.join(['%s'] * len(values))}) RETURNING id) "
        f"UPDATE {qn(AuditChain._meta.db_table)} SET last_hash = %s WHERE {qn('key')} = %s "
        "RETURNING (SELECT id FROM event)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, event.hash, event.chain])
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias


class NewEvent(NamedTuple):
    """One event for `append_events`. `before` / `after` are JSON text made by `canonical_json`
    (or None), so a caller that also stores the value elsewhere serialises it only once."""

    action: str
    object_type: str
    object_id: str
    object_label: str
    before: str | None
    after: str | None


def canonical_json(value, *, plain: bool = False) -> str:
    """`value` as the chain hashes it: json.dumps with sorted keys, no spaces, ASCII only.

    `plain=True` says the value is already plain JSON (text keys; str, int, float, bool, None, lists,
    dicts), as validated record values are, and skips the normalising round trip record_event makes.
    orjson writes the text where its output is provably the same as json.dumps' once its non-ASCII
    characters (and DEL) are escaped as json.dumps escapes them (no float below 1e-4, whose notation
    differs); anything else falls back to json.dumps. A float from 1e16 up (which orjson writes as
    `1e+16`) is normalised first, as a plain value would be."""
    if not plain:
        value = _plain(value)
    text = _orjson_text(value)
    if (not text or "e+" in text) and _has_large_float(value):
        value = _plain(value)
        text = _orjson_text(value)
    if text and "e-" not in text and "0.0000" not in text:
        return text if text.isascii() and "\x7f" not in text else _NOT_ASCII.sub(_escape, text)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


_NOT_ASCII = re.compile(r"[^\x00-\x7e]")


def _orjson_text(value) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits: json.dumps writes it
        return ""


def _escape(match: re.Match) -> str:
    # What json.dumps' ensure_ascii writes for one character: \uXXXX, a surrogate pair past U+FFFF.
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _has_large_float(value) -> bool:
    if isinstance(value, float):
        return abs(value) >= 1e16
    if isinstance(value, dict):
        return any(_has_large_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_large_float(v) for v in value)
    return False


_content: Callable[[Any], dict] = AuditEvent.content
_compute_hash: Callable[[Any], str] = AuditEvent.compute_hash


class _Draft(SimpleNamespace):
    """An event's fields without a model instance, hashed by AuditEvent's own content()."""

    def content(self) -> dict:
        return _content(self)

    def compute_hash(self) -> str:
        return _compute_hash(self)


_PER_EVENT = ("action", "object_type", "object_id", "object_label", "before", "after", "prev_hash", "seq")


def append_events(*, actor, study, events: Iterable[NewEvent], reason: str = "", batch: int = 2000) -> int:
    """Append many events to the study's chain in one locked batch: the same rows, sequence
    numbers and hashes as calling `record_event` for each in turn (verify_chain cannot tell
    them apart), at a fraction of the cost. Returns how many were appended.

    The hashed text of each event is assembled from a template made by AuditEvent.content()
    itself, with the per-event fields (_PER_EVENT) spliced in, so no event is serialised twice;
    the first event's hash is checked against compute_hash(), so a change to content() that
    the template cannot follow fails loudly instead of writing a chain that does not verify.
    Rows go in with COPY on PostgreSQL and executemany elsewhere."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_events must run inside the transaction of the changes it records.")
    actor_obj = user_or_none(require_actor(actor))
    key = chain_key(study)
    AuditChain.objects.get_or_create(key=key)
    head = AuditChain.objects.select_for_update().get(key=key)
    fixed = {
        "chain": key,
        "study_id": study.pk if study is not None else None,
        "actor_id": actor_obj.pk if actor_obj else None,
        "actor_label": actor.get_username(),
        "timestamp": timezone.now().astimezone(dt.UTC),
        "reason": reason,
    }
    # Materialised first: the rows are made (and hashed) while COPY sends them, so building an
    # event must not query the database.
    pending = list(events)
    if not pending:
        return 0
    rows = _ChainRows(fixed, head.last_seq, head.last_hash)
    insert_rows(AuditEvent, list(_EVENT_COLUMNS), rows.of(pending), batch)
    head.last_seq, head.last_hash = rows.seq, rows.prev
    head.save(update_fields=["last_seq", "last_hash"])
    return len(pending)


class _ChainRows:
    """The rows of events appended after (seq, prev): each hashed from a template of
    AuditEvent.content() with its per-event fields spliced in. `seq` and `prev` follow the rows
    made so far (the chain's new head once all are made)."""

    def __init__(self, fixed: dict, seq: int, prev: str):
        self.fixed, self.seq, self.prev = fixed, seq, prev
        self.first_seq = seq + 1
        self.fmt = _hash_format(fixed)
        # The timestamp as the database takes it (text on SQLite); the hash has the datetime's own text.
        self.stamp = AuditEvent._meta.get_field("timestamp").get_db_prep_save(fixed["timestamp"], connection)

    def of(self, pending: list[NewEvent]) -> Iterator[tuple]:
        fixed, quote = self.fixed, encode_basestring_ascii  # what json.dumps does to a str
        for event in pending:
            seq, prev = self.seq + 1, self.prev
            object_id = str(event.object_id)
            object_label = str(event.object_label)[:255]
            text = self.fmt.format(
                quote(event.action),
                quote(event.object_type),
                quote(object_id),
                quote(object_label),
                "null" if event.before is None else event.before,
                "null" if event.after is None else event.after,
                f'"{prev}"',
                seq,
            )
            digest = hashlib.sha256(text.encode()).hexdigest()
            if seq == self.first_seq:
                _check_template(fixed, event, seq, prev, digest)
            yield (
                fixed["chain"],
                seq,
                fixed["study_id"],
                fixed["actor_id"],
                fixed["actor_label"],
                self.stamp,
                event.action,
                event.object_type,
                object_id,
                object_label,
                event.before,
                event.after,
                fixed["reason"],
                prev,
                digest,
            )
            self.seq, self.prev = seq, digest


def _hash_format(fixed: dict) -> str:
    """AuditEvent.content()'s canonical JSON for the `fixed` fields, as a str.format template
    whose numbered fields are _PER_EVENT's, in order."""
    token = uuid.uuid4().hex
    probe = _Draft(**fixed, **{name: f"{token}:{name}" for name in _PER_EVENT})
    template = json.dumps(probe.content(), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    pieces = re.split(f'"{token}:(\\w+)"', template)  # text, field, text, field, …, text
    position = {name: str(i) for i, name in enumerate(_PER_EVENT)}
    return "".join(
        piece.replace("{", "{{").replace("}", "}}") if i % 2 == 0 else "{" + position[piece] + "}"
        for i, piece in enumerate(pieces)
    )


def _check_template(fixed: dict, event: NewEvent, seq: int, prev: str, digest: str) -> None:
    draft = _Draft(
        **fixed,
        action=event.action,
        object_type=event.object_type,
        object_id=str(event.object_id),
        object_label=str(event.object_label)[:255],
        before=json.loads(event.before) if event.before is not None else None,
        after=json.loads(event.after) if event.after is not None else None,
        prev_hash=prev,
        seq=seq,
    )
    if draft.compute_hash() != digest:
        raise RuntimeError(
            "append_events built a hash that AuditEvent.compute_hash() does not: AuditEvent.content() "
            "changed in a way the template cannot follow (a new per-event field?); add it to _PER_EVENT."
        )


_EVENT_COLUMNS = (
    "chain",
    "seq",
    "study",
    "actor",
    "actor_label",
    "timestamp",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "before",
    "after",
    "reason",
    "prev_hash",
    "hash",
)


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
