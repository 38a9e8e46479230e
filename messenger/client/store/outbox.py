"""The outbox: requests waiting to reach the server, surviving restarts.

A send is written here in the same transaction as the state change that
produced it (the message row, the advanced MLS secret tree), so a crash can
neither lose it nor send it twice with different contents. ``idempotency_key``
(random, 16 bytes) goes with every attempt, so the server recognises a retry
and answers it without delivering again. Items are sent in order (FIFO by
``id``) *within a lane*: the items of one group (one conversation) form a
lane, and only a lane's head -- its oldest item -- may be sent, so a
conversation's messages keep their order, while lanes progress
independently (:meth:`OutboxRepository.lane_heads`). A failed attempt
increments ``attempts`` and sets ``next_attempt_at`` (the sync layer
chooses the backoff); a delivered or refused item is removed.

An item holds what is needed to build its request again in a later epoch
(schema version 3): ``intent`` (JSON: what the user asked for, e.g. "add
these KeyPackages"), ``content`` (the encoded message content of an
application message) and, once built, ``payload`` (the request body),
``epoch`` (the epoch it was built in), ``message_hash`` (SHA-256 of the MLS
message in it) and, for a commit, ``pending_state`` -- the group state once
the server accepts it. An item not built yet has an empty ``payload``.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from .database import Database, Row

__all__ = ["IDEMPOTENCY_KEY_SIZE", "OutboxItem", "OutboxKind", "OutboxRepository"]

IDEMPOTENCY_KEY_SIZE = 16

_COLUMNS = (
    "id, idempotency_key, kind, group_id, message_id, payload, attempts, next_attempt_at, "
    "last_error, created_at, epoch, intent, content, pending_state, message_hash"
)


class OutboxKind(enum.StrEnum):
    MESSAGE = "message"
    """An application message or proposal for a group (``SendRequest``)."""
    COMMIT = "commit"
    """A commit, with its Welcome and GroupInfo (``CommitRequest``)."""
    CREATE_GROUP = "create_group"
    """A new group (``CreateGroupRequest``)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    idempotency_key: bytes
    kind: OutboxKind
    group_id: bytes | None
    message_id: int | None
    """The local message this send delivers, if any."""
    payload: bytes = field(repr=False)
    attempts: int
    next_attempt_at: int
    last_error: str | None
    created_at: int
    epoch: int | None = None
    """The epoch ``payload`` was built in (None: not built yet)."""
    intent: str | None = None
    """JSON: what to build (the sync layer's format)."""
    content: bytes | None = field(default=None, repr=False)
    """The encoded content of an application message."""
    pending_state: bytes | None = field(default=None, repr=False)
    """For a commit: the group state once the server has accepted it."""
    message_hash: bytes | None = None
    """SHA-256 of the MLS message in ``payload``."""

    @property
    def built(self) -> bool:
        return bool(self.payload)


def _item(row: Row) -> OutboxItem:
    return OutboxItem(
        id=row[0],
        idempotency_key=row[1],
        kind=OutboxKind(row[2]),
        group_id=row[3],
        message_id=row[4],
        payload=row[5],
        attempts=row[6],
        next_attempt_at=row[7],
        last_error=row[8],
        created_at=row[9],
        epoch=row[10],
        intent=row[11],
        content=row[12],
        pending_state=row[13],
        message_hash=row[14],
    )


class OutboxRepository:
    """Pending sends."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(
        self,
        kind: OutboxKind,
        payload: bytes,
        *,
        now: int,
        group_id: bytes | None = None,
        message_id: int | None = None,
        idempotency_key: bytes | None = None,
        intent: str | None = None,
        content: bytes | None = None,
    ) -> OutboxItem:
        """Queue a request, due at once (``payload`` may be empty: built later)."""
        key = idempotency_key
        if key is None:
            key = secrets.token_bytes(IDEMPOTENCY_KEY_SIZE)
        row = self._db.query_one(
            "INSERT INTO outbox (idempotency_key, kind, group_id, message_id, payload, "  # noqa: S608
            "next_attempt_at, created_at, intent, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_COLUMNS}",
            (key, kind.value, group_id, message_id, payload, now, now, intent, content),
        )
        assert row is not None
        return _item(row)

    def get(self, item_id: int) -> OutboxItem | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM outbox WHERE id = ?",  # noqa: S608
            (item_id,),
        )
        return None if row is None else _item(row)

    def by_message_hash(self, message_hash: bytes) -> OutboxItem | None:
        """The item whose built payload carries the MLS message with this hash."""
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM outbox WHERE message_hash = ? ORDER BY id LIMIT 1",  # noqa: S608
            (message_hash,),
        )
        return None if row is None else _item(row)

    def due(self, *, now: int, limit: int = 100) -> list[OutboxItem]:
        """Items whose next attempt is due, oldest first."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM outbox WHERE next_attempt_at <= ? "  # noqa: S608
            "ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [_item(row) for row in rows]

    def lane_heads(self) -> list[tuple[bytes | None, int]]:
        """``(group_id, next_attempt_at)`` of each lane's oldest item, oldest lane first.

        A lane is the items of one group (items without a group form one lane).
        """
        rows = self._db.query(
            "SELECT group_id, next_attempt_at FROM outbox WHERE id IN "
            "(SELECT min(id) FROM outbox GROUP BY group_id) ORDER BY id"
        )
        return [(None if r[0] is None else bytes(r[0]), int(r[1])) for r in rows]

    def head(self, group_id: bytes | None) -> OutboxItem | None:
        """The oldest item of a lane (due or not)."""
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM outbox WHERE group_id IS ? ORDER BY id LIMIT 1",  # noqa: S608
            (group_id,),
        )
        return None if row is None else _item(row)

    def lane(self, group_id: bytes | None, limit: int) -> list[OutboxItem]:
        """The first ``limit`` items of a lane, oldest first (due or not)."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM outbox WHERE group_id IS ? ORDER BY id LIMIT ?",  # noqa: S608
            (group_id, limit),
        )
        return [_item(row) for row in rows]

    def by_message_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, OutboxItem]:
        """The items carrying the MLS messages with these hashes, by hash."""
        if not hashes:
            return {}
        marks = ", ".join("?" * len(hashes))
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM outbox WHERE message_hash IN ({marks}) ORDER BY id",  # noqa: S608
            tuple(hashes),
        )
        found: dict[bytes, OutboxItem] = {}
        for row in rows:
            item = _item(row)
            assert item.message_hash is not None
            found.setdefault(bytes(item.message_hash), item)
        return found

    def remove_many(self, item_ids: Sequence[int]) -> list[int]:
        """Drop items (sent); the local message ids of those that were there."""
        if not item_ids:
            return []
        marks = ", ".join("?" * len(item_ids))
        rows = self._db.query(
            f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING message_id",  # noqa: S608
            tuple(item_ids),
        )
        return [int(row[0]) for row in rows if row[0] is not None]

    def first(self) -> OutboxItem | None:
        """The oldest item, due or not."""
        row = self._db.query_one(f"SELECT {_COLUMNS} FROM outbox ORDER BY id LIMIT 1")  # noqa: S608
        return None if row is None else _item(row)

    def next_attempt_at(self) -> int | None:
        """When the next item is due (None if the outbox is empty)."""
        value = self._db.query_value("SELECT min(next_attempt_at) FROM outbox")
        return None if value is None else int(value)

    def for_group(self, group_id: bytes) -> list[OutboxItem]:
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM outbox WHERE group_id = ? ORDER BY id",  # noqa: S608
            (group_id,),
        )
        return [_item(row) for row in rows]

    def set_built(
        self,
        item_id: int,
        *,
        payload: bytes,
        epoch: int,
        message_hash: bytes,
        pending_state: bytes | None = None,
        intent: str | None = None,
    ) -> None:
        """Record the request built for ``epoch`` (``intent`` replaces the old one if given)."""
        self._db.execute(
            "UPDATE outbox SET payload = ?, epoch = ?, message_hash = ?, pending_state = ?, "
            "intent = coalesce(?, intent) WHERE id = ?",
            (payload, epoch, message_hash, pending_state, intent, item_id),
        )

    def set_built_many(self, built: Sequence[tuple[int, bytes, int, bytes]]) -> None:
        """Record requests built: ``(item_id, payload, epoch, message_hash)`` each."""
        self._db.executemany(
            "UPDATE outbox SET payload = ?, epoch = ?, message_hash = ?, pending_state = NULL "
            "WHERE id = ?",
            [(payload, epoch, digest, item_id) for item_id, payload, epoch, digest in built],
        )

    def move_lane(self, old_group: bytes, new_group: bytes, *, now: int) -> int:
        """Move a group's messages and commits to another group's lane; how many.

        For a conversation that continues in a new group (a ReInit, RFC 9420
        §11.2): each item is built again in the new group from what it is
        for (its intent and content), due at ``now`` at the latest, in its
        old order. A request to register the old group is moot and dropped.
        """
        self._db.execute(
            "DELETE FROM outbox WHERE group_id = ? AND kind = ?",
            (old_group, OutboxKind.CREATE_GROUP.value),
        )
        return self._db.execute(
            "UPDATE outbox SET group_id = ?, payload = x'', epoch = NULL, message_hash = NULL, "
            "pending_state = NULL, next_attempt_at = min(next_attempt_at, ?) WHERE group_id = ?",
            (new_group, now, old_group),
        ).rowcount

    def set_intent(self, item_id: int, intent: str) -> None:
        """Replace an item's intent; what was built from the old one is discarded."""
        self._db.execute(
            "UPDATE outbox SET intent = ?, payload = x'', epoch = NULL, message_hash = NULL, "
            "pending_state = NULL WHERE id = ?",
            (intent, item_id),
        )

    def make_due(self, *, now: int) -> int:
        """Make every item due at ``now`` (a retry the user asked for); how many."""
        return self._db.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE next_attempt_at > ?", (now, now)
        ).rowcount

    def record_failure(
        self, item_id: int, *, error: str, next_attempt_at: int
    ) -> OutboxItem | None:
        """Count a failed attempt and schedule the next one; the updated item."""
        row = self._db.query_one(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "  # noqa: S608
            f"WHERE id = ? RETURNING {_COLUMNS}",
            (error[:500], next_attempt_at, item_id),
        )
        return None if row is None else _item(row)

    def remove(self, item_id: int) -> bool:
        """Drop an item (sent, or given up)."""
        return self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,)).rowcount > 0

    def count(self) -> int:
        return int(self._db.query_value("SELECT count(*) FROM outbox"))
