"""The outbox: requests waiting to reach the server, surviving restarts.

A send is written here in the same transaction as the state change that
produced it (the message row, the advanced MLS secret tree), so a crash can
neither lose it nor send it twice with different contents: the payload is
the finished request body, and ``idempotency_key`` (random, 16 bytes) lets
the server recognise a retry. Items are sent in order (FIFO by ``id``); a
failed attempt increments ``attempts`` and sets ``next_attempt_at`` (the
sync layer chooses the backoff); a delivered item is removed.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

from .database import Database, Row

__all__ = ["IDEMPOTENCY_KEY_SIZE", "OutboxItem", "OutboxKind", "OutboxRepository"]

IDEMPOTENCY_KEY_SIZE = 16

_COLUMNS = (
    "id, idempotency_key, kind, group_id, message_id, payload, attempts, next_attempt_at, "
    "last_error, created_at"
)


class OutboxKind(enum.StrEnum):
    MESSAGE = "message"
    """An application message for a group (``SendRequest``)."""
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
    ) -> OutboxItem:
        """Queue a request, due at once."""
        key = idempotency_key
        if key is None:
            key = secrets.token_bytes(IDEMPOTENCY_KEY_SIZE)
        row = self._db.query_one(
            "INSERT INTO outbox (idempotency_key, kind, group_id, message_id, payload, "  # noqa: S608
            f"next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (key, kind.value, group_id, message_id, payload, now, now),
        )
        assert row is not None
        return _item(row)

    def get(self, item_id: int) -> OutboxItem | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM outbox WHERE id = ?",  # noqa: S608
            (item_id,),
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
