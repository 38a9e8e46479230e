"""Read markers: how far each member of a conversation has read.

One marker per (conversation, account), this client's own account
included: "read up to and including local message ``message_id``". Markers
only move forward, since read receipts can arrive out of order. The unread
count of a conversation is the number of incoming, not deleted messages
after the own marker (system notes do not count: a read receipt can only
name a message someone sent) -- an index range scan on
``messages_by_conversation``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database

__all__ = ["ReadMarker", "ReadMarkerRepository"]


@dataclass(frozen=True, slots=True)
class ReadMarker:
    conversation_id: int
    account_id: str
    message_id: int
    read_at: int


class ReadMarkerRepository:
    """Read positions per conversation and account."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def mark_read(self, conversation_id: int, account_id: str, message_id: int, *, at: int) -> bool:
        """Move the marker to ``message_id`` if that is further; whether it moved."""
        result = self._db.execute(
            "INSERT INTO read_markers (conversation_id, account_id, message_id, read_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id, account_id) DO UPDATE SET "
            "message_id = excluded.message_id, read_at = excluded.read_at "
            "WHERE excluded.message_id > read_markers.message_id",
            (conversation_id, account_id, message_id, at),
        )
        return result.rowcount > 0

    def get(self, conversation_id: int, account_id: str) -> ReadMarker | None:
        row = self._db.query_one(
            "SELECT conversation_id, account_id, message_id, read_at FROM read_markers "
            "WHERE conversation_id = ? AND account_id = ?",
            (conversation_id, account_id),
        )
        return None if row is None else ReadMarker(*row)

    def for_conversation(self, conversation_id: int) -> list[ReadMarker]:
        rows = self._db.query(
            "SELECT conversation_id, account_id, message_id, read_at FROM read_markers "
            "WHERE conversation_id = ? ORDER BY account_id",
            (conversation_id,),
        )
        return [ReadMarker(*row) for row in rows]

    def unread_count(self, conversation_id: int, account_id: str) -> int:
        """Incoming messages after ``account_id``'s marker (all, if it has none); no notes."""
        return int(
            self._db.query_value(
                "SELECT count(*) FROM messages WHERE conversation_id = ? AND id > coalesce("
                "(SELECT message_id FROM read_markers WHERE conversation_id = ? "
                "AND account_id = ?), 0) AND outgoing = 0 AND deleted_at IS NULL "
                "AND kind != 'system'",
                (conversation_id, conversation_id, account_id),
            )
        )

    def unread_counts(self, account_id: str) -> dict[int, int]:
        """The unread count of every conversation, by id (an index range scan each)."""
        rows = self._db.query(
            "SELECT c.id, (SELECT count(*) FROM messages AS m WHERE m.conversation_id = c.id "
            "AND m.id > coalesce((SELECT r.message_id FROM read_markers AS r "
            "WHERE r.conversation_id = c.id AND r.account_id = ?), 0) "
            "AND m.outgoing = 0 AND m.deleted_at IS NULL AND m.kind != 'system') "
            "FROM conversations AS c",
            (account_id,),
        )
        return {conversation_id: count for conversation_id, count in rows}
